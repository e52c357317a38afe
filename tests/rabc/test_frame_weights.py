"""The weights parquet (index, weight, provenance) and `PrecomputedWeighter`, read by lerobot's own training
loop through `rewardkit train-policy --sample_weighting.type=precomputed`."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from tiny_act import TINY_ACT_TRAIN_FLAGS

from rewardkit.data.dataset import open_dataset
from rewardkit.errors import RewardkitError
from rewardkit.labelling.parquet import dataset_fingerprint
from rewardkit.rabc.frame_weights import (
    PROVENANCE_KEY,
    PrecomputedWeighter,
    read_weights_parquet,
    verdict_weights,
    write_weights_parquet,
)


def test_round_trip_keeps_weights_and_provenance(tmp_path):
    path = write_weights_parquet(
        tmp_path / "w.parquet", np.array([2, 0, 1]), np.array([0.5, 1.0, 0.0]), {"source": "test", "k": 3}
    )
    read = read_weights_parquet(path)
    assert read.index.tolist() == [0, 1, 2] and read.weight.tolist() == [1.0, 0.0, 0.5]
    assert read.provenance == {"source": "test", "k": 3, "format_version": 1}
    assert json.loads(pq.read_schema(path).metadata[PROVENANCE_KEY.encode()])["source"] == "test"


@pytest.mark.parametrize(
    ("index", "weight", "message"),
    [
        ([0, 0], [1.0, 1.0], "distinct"),
        ([0, 1], [1.0, np.nan], "finite"),
        ([0, 1], [1.0, -0.5], "finite and >= 0"),
        ([0, 1], [0.0, 0.0], "every weight is 0"),
        ([0, 1], [1.0], "must be"),
    ],
)
def test_bad_weights_are_refused_before_anything_is_written(tmp_path, index, weight, message):
    path = tmp_path / "w.parquet"
    with pytest.raises(RewardkitError, match=message):
        write_weights_parquet(path, np.array(index), np.array(weight), {})
    assert not path.exists()


def test_verdict_weights_zero_every_frame_of_a_dropped_episode():
    index, episode, weight = verdict_weights(
        {0: "keep", 1: "drop", 2: "look"},
        {0: np.arange(0, 3), 1: np.arange(3, 5), 2: np.arange(5, 6)},
        {"keep": 1.0, "look": 0.5, "drop": 0.0},
    )
    assert index.tolist() == list(range(6)) and episode.tolist() == [0, 0, 0, 1, 1, 2]
    assert weight.tolist() == [1, 1, 1, 0, 0, 0.5]
    with pytest.raises(RewardkitError, match="no weight for verdict"):
        verdict_weights({0: "maybe"}, {0: np.arange(2)})


def test_weighter_gathers_by_index_and_refuses_unknown_frames(tmp_path):
    path = write_weights_parquet(tmp_path / "w.parquet", np.array([0, 1, 3]), np.array([1.0, 0.0, 0.25]), {})
    weighter = PrecomputedWeighter.from_file(path)
    weights, stats = weighter.compute_batch_weights({"index": torch.tensor([3, 0, 1])})
    assert weights.tolist() == [0.25, 1.0, 0.0] and stats["zero_weight_share"] == pytest.approx(1 / 3)
    with pytest.raises(RewardkitError, match="frame index 2 is not in weights file"):
        weighter.compute_batch_weights({"index": torch.tensor([2])})
    with pytest.raises(RewardkitError, match="frame index 9 is not in weights file"):
        weighter.compute_batch_weights({"index": torch.tensor([9])})
    lenient = PrecomputedWeighter.from_file(path, missing_weight=0.5)
    assert lenient.compute_batch_weights({"index": torch.tensor([2, 9])})[0].tolist() == [0.5, 0.5]


def test_weights_for_another_dataset_are_refused(tiny_dataset, tmp_path):
    dataset = open_dataset(root=tiny_dataset[0])
    other = {**dataset_fingerprint(dataset), "episodes_sha256": "0" * 64, "root": "/elsewhere"}
    path = write_weights_parquet(tmp_path / "a.parquet", np.arange(60), np.ones(60), {"dataset": other})
    with pytest.raises(RewardkitError, match="made for another dataset"):
        PrecomputedWeighter.from_file(path, dataset=dataset)
    path = write_weights_parquet(tmp_path / "b.parquet", np.arange(61), np.ones(61), {})
    with pytest.raises(RewardkitError, match="lists frame index 60"):
        PrecomputedWeighter.from_file(path, dataset=dataset)


def test_lerobot_training_loop_weights_batches_with_the_parquet(tiny_dataset, tmp_path):
    from rewardkit.rabc.training import train_policy

    root, _ = tiny_dataset
    dataset = open_dataset(root=root)
    weight = np.ones(60, np.float32)
    weight[20:44] = 0.0  # episode 1 dropped by curation
    weights_path = write_weights_parquet(
        tmp_path / "frame_weights.parquet",
        np.arange(60),
        weight,
        {"source": "curation", "dataset": dataset_fingerprint(dataset)},
    )
    weighter = train_policy(
        [
            *TINY_ACT_TRAIN_FLAGS,
            f"--dataset.root={root}",
            "--log_freq=1",
            f"--output_dir={tmp_path / 'run'}",
            "--sample_weighting.type=precomputed",
            f"--sample_weighting.progress_path={weights_path}",
        ]
    )
    assert isinstance(weighter, PrecomputedWeighter)
    assert weighter.batches_weighted == 2 and weighter.provenance["source"] == "curation"
    assert weighter.get_stats()["zero_share"] == pytest.approx(24 / 60)
