"""The labeller with the real SARM and the real feature cache (tiny random CLIP, no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.data.dataset import open_dataset
from rewardkit.labelling import label_dataset

sarm = pytest.importorskip("rewardkit.models.sarm")


def test_sarm_labels_from_the_cache_it_builds_and_stride_matches(tiny_dataset, tmp_path):
    from rewardkit.cache import FeatureCache

    root, truths = tiny_dataset
    ds = open_dataset(root=root)
    torch.manual_seed(0)
    config = sarm.SARMConfig(
        encoder="clip-random:tiny", cameras=None, image_dim=64, text_dim=64, hidden_dim=32, num_heads=2,
        num_layers=1, n_obs_steps=4, frame_gap=3, max_rewind_steps=2, device="cpu",
    )  # fmt: skip
    model = sarm.SARMRewardModel(config).eval()
    cache_dir = tmp_path / "cache"
    labels = label_dataset(model, ds, show_progress=False, cache_dir=cache_dir)
    assert [len(e.progress) for e in labels] == [t.length for t in truths]
    assert all(((e.progress >= 0) & (e.progress <= 1)).all() for e in labels)
    cache = FeatureCache.for_dataset(ds, "clip-random:tiny", ["observation.images.top"], cache_dir=cache_dir)
    assert cache is not None and cache.is_complete  # built once, every frame
    strided = label_dataset(model, ds, stride=3, show_progress=False, cache_dir=cache_dir)
    for full, part in zip(labels, strided, strict=True):
        at = np.arange(0, full.length, 3)
        np.testing.assert_allclose(part.progress[at], full.progress[at], atol=1e-5)
