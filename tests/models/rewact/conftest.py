"""RewACT test fixtures: the whole tiny dataset as one raw batch."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def rewact_data(tiny_dataset):
    """(dataset_root, lerobot dataset metadata, every frame of the tiny dataset as one raw batch)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, _ = tiny_dataset
    dataset = LeRobotDataset("local/tiny", root=root, delta_timestamps={"action": [i / 10 for i in range(5)]})
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(dataset), shuffle=False)))
    return root, dataset.meta, batch
