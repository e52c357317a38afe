"""The success classifier on the generic Trainer: loss falls, validation is logged, resume is exact, and the
trainer's batches (vectorised `get_batch`) equal collated samples."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import default_collate

from rewardkit.commands.train import main
from rewardkit.data.dataset import DatasetConfig
from rewardkit.models.classifier import SuccessClassifierConfig
from rewardkit.training import Trainer
from rewardkit.training.classifier import (
    ClassifierTrainConfig,
    SuccessLabelConfig,
    prepare,
    train_classifier,
)


def _cfg(root, output_dir, **overrides):
    values = dict(
        dataset=DatasetConfig(root=str(root)),
        model=SuccessClassifierConfig(
            backbone="finetune", cnn="convnet", image_size=16, hidden_dim=16, use_state=True, device="cpu"
        ),
        labels=SuccessLabelConfig(source="last_k", last_k=5),
        failed_episodes=[3],
        output_dir=str(output_dir),
        steps=20,
        batch_size=16,
        lr=1e-3,
        val_episodes=[1],
        val_every=10,
        log_every=10,
        progress_bar=False,
    )
    values.update(overrides)
    return ClassifierTrainConfig(**values)


def test_training_lowers_the_loss_and_logs_validation_metrics(two_camera_dataset, tmp_path, caplog):
    cfg = _cfg(two_camera_dataset[0], tmp_path / "run")
    torch.manual_seed(cfg.seed)
    model, train_data, val_data = prepare(cfg)
    assert len(val_data) == 22 and len(train_data) == 18 + 20 + 24  # episode 1 held out
    trainer = Trainer(model, train_data, cfg, cfg.output_dir, val_data)
    before = trainer.evaluate()
    records = []
    with caplog.at_level(logging.INFO, logger="rewardkit"):
        result = trainer.train(on_log=lambda step, record: records.append((step, record)))
    assert [step for step, _ in records] == [10, 20]
    assert {"loss", "accuracy", "lr", "val_loss", "val_accuracy"} <= set(records[-1][1])
    assert result.val_logs["val_loss"] < before["val_loss"], (before, result.val_logs)
    assert any("val_loss=" in message for message in caplog.messages)
    assert (tmp_path / "run" / "checkpoints" / "000020" / "pretrained_model" / "model.safetensors").is_file()


def test_train_classifier_reports_validation_auroc(two_camera_dataset, tmp_path):
    cfg = _cfg(two_camera_dataset[0], tmp_path / "run", val_episodes=None, val_fraction=0.25, steps=4)
    _, metrics = train_classifier(cfg)
    assert metrics["on"] == "validation" and metrics["step"] == 4
    assert {"auroc", "accuracy", "val_loss", "val_accuracy"} <= set(metrics)
    assert metrics["checkpoint"].endswith("checkpoints/000004/pretrained_model")


def test_cli_resume_gives_the_weights_of_an_uninterrupted_run(two_camera_dataset, tmp_path):
    root = two_camera_dataset[0]
    flags = [
        "--model.type=classifier", f"--dataset.root={root}", "--model.backbone=finetune", "--model.cnn=convnet",
        "--model.image_size=16", "--model.hidden_dim=16", "--model.device=cpu", "--labels.source=last_k",
        "--labels.last_k=4", "--failed_episodes=[3]", "--steps=6", "--save_every=3", "--batch_size=8",
        "--lr=1e-3", "--val_episodes=[2]", "--progress_bar=false",
    ]  # fmt: skip
    full = tmp_path / "full"
    assert main([*flags, f"--output_dir={full}"]) == 0
    # "Killed" after step 3: only that checkpoint survives; resume to 6.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(full / "checkpoints" / "000003", interrupted / "checkpoints" / "000003")
    (interrupted / "checkpoints" / "last").symlink_to("000003")
    assert main([*flags, f"--output_dir={interrupted}", "--resume=true"]) == 0
    weights = [load_file(d / "checkpoints" / "000006" / "pretrained_model" / "model.safetensors") for d in (full, interrupted)]  # fmt: skip
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    first = load_file(full / "checkpoints" / "000003" / "pretrained_model" / "model.safetensors")
    assert not all(torch.equal(first[k], weights[0][k]) for k in first)  # steps 4-6 did change the weights
    metrics = [json.loads((d / "train_metrics.json").read_text()) for d in (full, interrupted)]
    assert metrics[0]["auroc"] == metrics[1]["auroc"] and metrics[0]["on"] == "validation"


def test_get_batch_equals_collated_samples(two_camera_dataset, tmp_path):
    _, train_data, _ = prepare(_cfg(two_camera_dataset[0], tmp_path))
    indices = np.array([5, 0, 40, 17])
    batch = train_data.get_batch(indices, np.random.default_rng(0))
    collated = default_collate([train_data[int(i)] for i in indices])
    assert set(batch) == set(collated) == {
        "observation.images.top", "observation.images.wrist", "observation.state", "success", "weight",
    }  # fmt: skip
    for key, value in batch.items():
        assert torch.equal(value, collated[key]), key
    # classes are balanced: both carry the same total weight
    weights, labels = train_data.arrays["weight"], train_data.arrays["success"].astype(bool)
    assert np.isclose(weights[labels].sum(), weights[~labels].sum())
