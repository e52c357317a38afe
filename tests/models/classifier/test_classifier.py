"""Success classifier: labels, AUROC, training on a fixture with a failed episode, save/load, label_episode."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import rewardkit
from rewardkit.commands.train import main
from rewardkit.data.dataset import DatasetConfig, DatasetError, open_dataset
from rewardkit.encoders import make_encoder
from rewardkit.evaluation.metrics import roc_auc as success_auroc  # the one AUROC
from rewardkit.models.base import EpisodeInputs
from rewardkit.models.classifier import SuccessClassifierConfig, SuccessClassifierRewardModel
from rewardkit.models.classifier.labels import balanced_weights, labels_from_reward, labels_last_k
from rewardkit.training.classifier import (
    ClassifierTrainConfig,
    SuccessLabelConfig,
    build_training_arrays,
    frozen_episode_features,
    predict_arrays,
    train_classifier,
)

CAMERAS = ["observation.images.top", "observation.images.wrist"]


# ---- pure functions -----------------------------------------------------------------------------
def test_labels_last_k_marks_only_the_end_of_successful_episodes():
    np.testing.assert_array_equal(labels_last_k(5, True, 2), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(labels_last_k(5, False, 2), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(labels_last_k(2, True, 9), [1, 1])
    with pytest.raises(ValueError, match="last_k"):
        labels_last_k(5, True, 0)


def test_labels_from_reward_column_and_balanced_weights():
    np.testing.assert_array_equal(labels_from_reward(np.array([[0.0], [0.0], [1.0]])), [0, 0, 1])
    weights = balanced_weights(np.array([0, 0, 0, 1]))
    np.testing.assert_allclose(weights, [4 / 6, 4 / 6, 4 / 6, 2.0])
    assert weights[:3].sum() == pytest.approx(weights[3:].sum())


def test_auroc_hand_computed_cases():
    labels = np.array([0, 0, 1, 1])
    assert success_auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert success_auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert success_auroc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    # one positive above one of two negatives: 1/2
    assert success_auroc(np.array([0.3, 0.7, 0.5]), np.array([0, 0, 1])) == 0.5
    assert np.isnan(success_auroc(np.array([0.1, 0.2]), np.array([1, 1])))


# ---- training -----------------------------------------------------------------------------------
def _finetune_cfg(root, tmp_path, **model):
    values = dict(backbone="finetune", cnn="convnet", image_size=16, hidden_dim=32, device="cpu")
    values.update(model)
    return ClassifierTrainConfig(
        dataset=DatasetConfig(root=str(root)),
        model=SuccessClassifierConfig(**values),
        labels=SuccessLabelConfig(source="last_k", last_k=5),
        failed_episodes=[3],
        output_dir=str(tmp_path / "ckpt"),
        steps=30,
        batch_size=32,
        lr=1e-3,
    )


@pytest.fixture(scope="module")
def trained_finetune(two_camera_dataset, tmp_path_factory):
    root, _ = two_camera_dataset
    cfg = _finetune_cfg(root, tmp_path_factory.mktemp("clf"), camera_fusion="attention", use_state=True)
    model, metrics = train_classifier(cfg)
    return cfg, model, metrics


def test_finetune_classifier_separates_success_from_failure_frames(trained_finetune, two_camera_dataset):
    cfg, model, metrics = trained_finetune
    assert model.config.cameras == CAMERAS  # resolved from the dataset into the model's config
    assert model.config.state_dim == 4
    assert cfg.model.cameras == [] and cfg.model.state_dim != 4  # the caller's config is not changed
    assert metrics["auroc"] >= 0.9, metrics
    # the failed episode's best frame scores below the successful episodes' last frames
    dataset = open_dataset(root=two_camera_dataset[0])
    arrays = build_training_arrays(dataset, dataclasses.replace(cfg, model=model.config), [0, 3], [3])
    probs = predict_arrays(model, arrays)
    length0 = dataset.episode(0).length
    assert probs[length0 - 1] > probs[length0:].max()


def test_save_load_round_trip_gives_the_same_probabilities(trained_finetune, two_camera_dataset, tmp_path):
    cfg, model, _ = trained_finetune
    model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["type"] == "rewardkit_classifier"
    loaded = rewardkit.load(tmp_path / "ckpt")
    assert isinstance(loaded, SuccessClassifierRewardModel)
    assert loaded.config.camera_fusion == "attention" and loaded.config.use_state
    dataset = open_dataset(root=two_camera_dataset[0])
    arrays = build_training_arrays(dataset, dataclasses.replace(cfg, model=model.config), [1])
    np.testing.assert_allclose(predict_arrays(loaded, arrays), predict_arrays(model, arrays), atol=1e-5)


def test_label_episode_from_raw_frames_matches_predict(trained_finetune, two_camera_dataset):
    cfg, model, _ = trained_finetune
    dataset = open_dataset(root=two_camera_dataset[0])
    needs = model.required_inputs()
    assert needs.cameras == CAMERAS and needs.encoder is None and needs.state
    state = dataset.read_columns(2, ["observation.state"])["observation.state"]
    inputs = EpisodeInputs(
        episode_index=2, task="", length=dataset.episode(2).length, fps=dataset.fps, state=state,
        frames=lambda cam: dataset.read_frames(2, cam),
    )  # fmt: skip
    out = model.label_episode(inputs)
    assert out["progress"].shape == (inputs.length,) and out["progress"].dtype == np.float32
    np.testing.assert_array_equal(out["progress"], out["success_prob"])
    batch = {cam: torch.from_numpy(dataset.read_frames(2, cam)) for cam in CAMERAS}
    batch["observation.state"] = torch.from_numpy(state)
    np.testing.assert_allclose(out["progress"], model.predict_progress(batch).numpy(), atol=1e-5)


def test_frozen_backbone_trains_on_cached_features_and_labels_from_the_cache(two_camera_dataset, tmp_path):
    root, _ = two_camera_dataset
    cfg = ClassifierTrainConfig(
        dataset=DatasetConfig(root=str(root)),
        model=SuccessClassifierConfig(
            backbone="frozen", encoder="clip-random:tiny", hidden_dim=32, device="cpu"
        ),
        labels=SuccessLabelConfig(source="auto", last_k=5),
        failed_episodes=[3],
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "ckpt"),
        steps=200,
        batch_size=32,
        lr=1e-3,
    )
    model, metrics = train_classifier(cfg)
    assert metrics["auroc"] >= 0.85, metrics
    assert model.required_inputs().encoder == "clip-random:tiny"
    dataset = open_dataset(root=root)
    cached = frozen_episode_features(
        dataset, "clip-random:tiny", CAMERAS, [0], cache_dir=str(tmp_path / "cache")
    )
    features = {cam: cached[0][:, i] for i, cam in enumerate(CAMERAS)}
    inputs = EpisodeInputs(episode_index=0, task="", length=18, fps=10, image_features=features)
    # The cache holds the encoder's features of the decoded frames, rounded to float16.
    encoder = make_encoder("clip-random:tiny")
    frames = {cam: dataset.read_frames(0, cam) for cam in CAMERAS}
    fresh = {cam: encoder.encode_images(frames[cam]).numpy() for cam in CAMERAS}
    for cam in CAMERAS:
        np.testing.assert_array_equal(np.asarray(features[cam]), fresh[cam].astype(np.float16))
    assert model.label_episode(inputs)["progress"].shape == (18,)
    # The online path (encoder on raw frames) and the labelling path agree exactly on the same features.
    online = model.predict_progress({cam: torch.from_numpy(frames[cam]) for cam in CAMERAS})
    fresh_inputs = EpisodeInputs(episode_index=0, task="", length=18, fps=10, image_features=fresh)
    np.testing.assert_allclose(model.label_episode(fresh_inputs)["progress"], online.numpy(), atol=1e-5)


def test_train_cli_writes_checkpoint_and_metrics(two_camera_dataset, tmp_path, capsys):
    root, _ = two_camera_dataset
    out = tmp_path / "cli_ckpt"
    code = main([
        "--model.type=classifier", f"--dataset.root={root}", "--model.backbone=finetune", "--model.cnn=convnet",
        "--model.image_size=16", "--model.hidden_dim=16", "--labels.source=last_k", "--labels.last_k=4",
        "--failed_episodes=[3]", "--steps=3", "--batch_size=8", f"--output_dir={out}",
        "--model.device=cpu",
    ])  # fmt: skip
    assert code == 0
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"  # lerobot's layout, as SARM's
    assert f"checkpoint: {checkpoint.resolve()}" in capsys.readouterr().out
    assert isinstance(rewardkit.load(checkpoint), SuccessClassifierRewardModel)
    assert 0.0 <= json.loads((out / "train_metrics.json").read_text())["auroc"] <= 1.0


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_inputs_are_clear_errors(two_camera_dataset, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="backbone"):
        SuccessClassifierConfig(backbone="vit")
    with pytest.raises(ValueError, match="cameras is empty"):
        SuccessClassifierRewardModel(SuccessClassifierConfig(device="cpu"))
    # labels from a reward column the dataset does not have; labels of a single class
    cfg = _finetune_cfg(tiny_dataset[0], tmp_path)
    cfg.labels = SuccessLabelConfig(source="reward_column")
    with pytest.raises(DatasetError, match="next.reward"):
        train_classifier(cfg)
    cfg.labels = SuccessLabelConfig(source="last_k", last_k=1000)
    cfg.failed_episodes = []
    with pytest.raises(ValueError, match="all successes"):
        train_classifier(cfg)
    model = SuccessClassifierRewardModel(
        SuccessClassifierConfig(
            cameras=CAMERAS, backbone="finetune", cnn="convnet", image_size=16, device="cpu"
        )
    )
    with pytest.raises(ValueError, match="observation.images.wrist"):
        model.predict_progress({"observation.images.top": torch.zeros(1, 16, 16, 3, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="unknown --model.type=svm; choose one of .*classifier"):
        main(["--model.type=svm", f"--dataset.root={tiny_dataset[0]}"])
