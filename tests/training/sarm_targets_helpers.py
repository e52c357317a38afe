"""What the SARM target tests share: a tiny SARM training config on `tiny_dataset`, and the targets the
training batches give each frame of an episode."""

from __future__ import annotations

import numpy as np

from rewardkit.data.dataset import DatasetConfig
from rewardkit.models.sarm import SARMConfig
from rewardkit.training.sarm import SARMTrainConfig

LENGTHS = [20, 24, 16]  # tiny_dataset's episodes


def tiny_sarm_cfg(root, tmp_path, **flags) -> SARMTrainConfig:
    """A tiny single-stage SARM run on `root` (no validation split), with `flags` on top."""
    model = SARMConfig(encoder="clip-random:tiny", hidden_dim=32, num_layers=1, num_heads=4, n_obs_steps=4,
                       frame_gap=2, max_rewind_steps=2)  # fmt: skip
    return SARMTrainConfig(dataset=DatasetConfig(root=str(root)), model=model, output_dir=str(tmp_path / "out"),
                           cache_dir=str(tmp_path / "cache"), num_perturbation_texts=2, val_fraction=0.0,
                           **flags)  # fmt: skip


def frame_targets(data, episode_index: int) -> np.ndarray:
    """The tau the training batches give each frame of one episode, at the scored frame's window slot."""
    slot = list(data.config.window_offsets).index(0)
    position = [e.episode_index for e in data.episodes].index(episode_index)
    first = int(sum(e.length for e in data.episodes[:position]))
    indices = np.arange(first, first + data.episodes[position].length)
    batch = data.get_batch(indices, rng=None)  # no augmentation: the targets as computed
    return batch["sparse_tau"][:, slot].numpy()
