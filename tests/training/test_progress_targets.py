"""SARM trained on a progress file's labels (#15: progress targets that are not time, e.g. a VLM's zero-shot
progress distilled into SARM): the file's values reach the training batches, strided gaps are interpolated,
episodes it does not cover keep their targets, and a file that does not fit is refused."""

from __future__ import annotations

import numpy as np
import pytest
from sarm_targets_helpers import LENGTHS, frame_targets, tiny_sarm_cfg

from rewardkit.data.dataset import DatasetError, open_dataset
from rewardkit.data.targets import single_stage_targets
from rewardkit.errors import RewardkitError
from rewardkit.labelling.parquet import EpisodeLabels, write_progress_parquet
from rewardkit.training.sarm import given_progress_targets, prepare


def _write(root, path, values: dict[int, np.ndarray]):
    starts = {e.episode_index: e.from_index for e in open_dataset(root=root).episodes()}
    labels = [EpisodeLabels(e, starts[e], {"progress": np.asarray(v, np.float32)}) for e, v in values.items()]
    return write_progress_parquet(path, labels, model_path="a-labeller")


def test_progress_file_values_reach_the_training_batches(tiny_dataset, tmp_path):
    root = tiny_dataset[0]
    rng = np.random.default_rng(0)
    labelled = np.sort(rng.uniform(0, 1, LENGTHS[1]))
    strided = np.full(LENGTHS[0], np.nan)
    strided[::5] = [0.0, 0.2, 0.6, 0.8]  # frames 0, 5, 10, 15 labelled; the rest interpolated, then held
    path = _write(root, tmp_path / "labels.parquet", {1: labelled, 0: strided})
    _, train_data, _ = prepare(tiny_sarm_cfg(root, tmp_path, progress_targets=str(path)))
    np.testing.assert_allclose(frame_targets(train_data, 1), labelled, atol=1e-6)
    expected = np.interp(np.arange(LENGTHS[0]), [0, 5, 10, 15], [0.0, 0.2, 0.6, 0.8])
    np.testing.assert_allclose(frame_targets(train_data, 0), expected, atol=1e-6)
    # episode 2 is not in the file: the time ramp as before
    np.testing.assert_allclose(frame_targets(train_data, 2), single_stage_targets(LENGTHS[2])[1], atol=1e-6)


def test_progress_file_wins_over_failure_frames(tiny_dataset, tmp_path):
    root = tiny_dataset[0]
    labelled = np.linspace(0, 0.5, LENGTHS[1])
    path = _write(root, tmp_path / "labels.parquet", {1: labelled})
    cfg = tiny_sarm_cfg(root, tmp_path, progress_targets=str(path), failed_episodes=[1], failure_frames=[3],
                        failure_target="drop")  # fmt: skip
    _, train_data, _ = prepare(cfg)
    np.testing.assert_allclose(frame_targets(train_data, 1), labelled, atol=1e-6)


def test_progress_file_refused(tiny_dataset, tmp_path):
    root = tiny_dataset[0]
    outside = _write(root, tmp_path / "outside.parquet", {1: np.linspace(0, 1.5, LENGTHS[1])})
    with pytest.raises(DatasetError, match="outside \\[0, 1\\]"):
        prepare(tiny_sarm_cfg(root, tmp_path, progress_targets=str(outside)))
    ok = _write(root, tmp_path / "ok.parquet", {1: np.linspace(0, 1, LENGTHS[1])})
    with pytest.raises(DatasetError, match="single-stage targets"):  # with subtask annotations
        given_progress_targets(
            tiny_sarm_cfg(root, tmp_path, progress_targets=str(ok)), open_dataset(root=root), True
        )
    with pytest.raises(FileNotFoundError):
        prepare(tiny_sarm_cfg(root, tmp_path, progress_targets=str(tmp_path / "missing.parquet")))
    # rows that are not frames of that episode (a file labelled on another dataset)
    wrong = _write(root, tmp_path / "wrong.parquet", {2: np.linspace(0, 1, LENGTHS[1])})
    with pytest.raises(RewardkitError):
        prepare(tiny_sarm_cfg(root, tmp_path, progress_targets=str(wrong)))
