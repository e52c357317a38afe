"""Small in-memory SARM inputs (no dataset, no cache) shared by the SARM and trainer tests."""

from __future__ import annotations

import numpy as np

from rewardkit.data.targets import single_stage_targets, stage_tau_targets
from rewardkit.models.sarm import SARMConfig
from rewardkit.models.sarm.data import EpisodeSlice, SARMTrainingData

FEATURE_DIM = 16


def tiny_config(**overrides) -> SARMConfig:
    """hidden 32, 1 layer, 4 heads, 4 observation steps 2 frames apart, one camera."""
    values = dict(
        hidden_dim=32,
        num_layers=1,
        num_heads=4,
        n_obs_steps=4,
        frame_gap=2,
        max_rewind_steps=2,
        image_dim=FEATURE_DIM,
        text_dim=FEATURE_DIM,
        max_state_dim=8,
        dropout=0.0,
        cameras=["observation.images.top"],
        device="cpu",
    )
    values.update(overrides)
    return SARMConfig(**values)


def synthetic_data(config: SARMConfig, lengths=(20, 24, 16), augment=True, seed=0, num_tasks=1):
    """Features that carry progress (a learnable signal), targets per head, a perturbation bank."""
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    direction = rng.normal(size=(len(config.cameras), FEATURE_DIM))
    progress = np.concatenate([np.linspace(0, 1, n) for n in lengths])
    images = {
        c: (progress[:, None] * direction[i] + 0.05 * rng.normal(size=(total, FEATURE_DIM))).astype(
            np.float16
        )
        for i, c in enumerate(config.cameras)
    }
    state = np.stack([progress, rng.normal(size=total)], 1).astype(np.float32)
    texts = rng.normal(size=(num_tasks, FEATURE_DIM)).astype(np.float32)
    slices, start = [], 0
    targets = {}
    sparse, dense = [], []
    for i, n in enumerate(lengths):
        slices.append(EpisodeSlice(i, start, n, i % num_tasks))
        start += n
        sparse.append(
            single_stage_targets(n)
            if config.num_sparse_stages == 1
            else stage_tau_targets(n, [0, n // 2], [n // 2, n])
        )
        dense.append(stage_tau_targets(n, [0, n // 3, 2 * n // 3], [n // 3, 2 * n // 3, n]))
    targets["sparse"] = tuple(np.concatenate(parts) for parts in zip(*sparse, strict=True))
    targets["dense"] = tuple(np.concatenate(parts) for parts in zip(*dense, strict=True))
    bank = rng.normal(size=(5, FEATURE_DIM)).astype(np.float32)
    return SARMTrainingData(config, images, slices, texts, targets, state, bank, augment=augment)
