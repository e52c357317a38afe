"""Configs are resolved into a new config, never changed in place: building a SARM model or preparing its
training leaves the caller's config as it was, and the saved config holds the resolved values."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from sarm_helpers import tiny_config

import rewardkit
from rewardkit.data import annotations as io
from rewardkit.data.dataset import DatasetConfig
from rewardkit.models.sarm import SARMConfig, SARMRewardModel
from rewardkit.training.sarm import SARMTrainConfig, prepare, train_sarm


@pytest.mark.parametrize("window", ["causal", "centred"])
def test_building_a_model_leaves_the_callers_config_unchanged(tmp_path, window):
    config = tiny_config(window=window, num_layers=2)
    before = copy.deepcopy(config)
    model = SARMRewardModel(config)
    assert config == before and config.architecture is None and config.temporal_bands is None
    expected = ("sliding", [2, 2]) if window == "causal" else ("lerobot", None)
    assert (model.config.architecture, model.config.temporal_bands) == expected
    assert model.config is not config
    # the saved config holds the resolved values, and the model built from it is the same model
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert (saved["architecture"], saved["temporal_bands"]) == expected
    loaded = rewardkit.load(tmp_path / "ckpt")
    assert (loaded.config.architecture, loaded.config.temporal_bands) == expected
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def _train_config(root, tmp_path, **model_fields) -> SARMTrainConfig:
    model = SARMConfig(
        encoder="clip-random:tiny", hidden_dim=32, num_layers=1, num_heads=4, n_obs_steps=4,
        max_rewind_steps=2, device="cpu", **model_fields,
    )  # fmt: skip
    return SARMTrainConfig(
        dataset=DatasetConfig(root=str(root)), model=model, output_dir=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"), steps=2, batch_size=4, progress_bar=False, val_every=0,
    )  # fmt: skip


def test_preparing_training_leaves_the_callers_config_unchanged(tiny_dataset, tmp_path):
    source, truths = tiny_dataset
    root = tmp_path / "ds"
    shutil.copytree(source, root)  # annotations are written into a copy, never the shared fixture
    dense = {
        t.episode_index: io.SubtaskAnnotation(["a", "b", "c"], [0, 5, 10], [4, 9, t.length - 1])
        for t in truths
    }
    io.write_annotations(root, "dense", dense)
    cfg = _train_config(root, tmp_path, annotation_mode="dense_only", frame_gap_seconds=0.2)
    before = copy.deepcopy(cfg)

    model, train_data, _ = prepare(cfg)
    assert cfg == before  # nothing the dataset decided was written into the caller's config
    resolved = model.config
    assert resolved.cameras == ["observation.images.top"] and resolved.frame_gap == 2  # 0.2 s at 10 fps
    assert resolved.dense_subtask_names == ["a", "b", "c"] and resolved.num_dense_stages == 3
    assert resolved.image_dim == resolved.text_dim == 64  # the tiny random CLIP's feature size
    assert resolved.state_mean is not None and len(resolved.state_mean) == len(resolved.state_std)
    assert resolved.architecture == "sliding" and resolved.temporal_bands == [4]
    assert train_data.config is resolved  # the samples are drawn with the resolved window and heads

    result = train_sarm(cfg)
    assert cfg == before
    saved = json.loads((result.checkpoint / "config.json").read_text())
    for field in ("cameras", "frame_gap", "dense_subtask_names", "num_dense_stages", "image_dim",
                  "architecture", "temporal_bands"):  # fmt: skip
        assert saved[field] == getattr(resolved, field), field
    np.testing.assert_allclose(saved["state_mean"], resolved.state_mean, rtol=1e-6)
    np.testing.assert_allclose(saved["dense_temporal_proportions"], resolved.dense_temporal_proportions)
