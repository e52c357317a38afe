"""Completion frames (#15, success MAE): a successful episode's single-stage targets reach 1 at the frame its
task was done and hold it, and failed attempts are timed on the clock of the successes' completion."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sarm_targets_helpers import LENGTHS, frame_targets, tiny_sarm_cfg

from rewardkit.data.dataset import DatasetError
from rewardkit.data.targets import single_stage_targets
from rewardkit.training.sarm import completion_frames, episode_targets, prepare


def test_completion_frame_reaches_the_training_batches(tiny_dataset, tmp_path):
    _, train_data, _ = prepare(
        tiny_sarm_cfg(tiny_dataset[0], tmp_path, completed_episodes=[0], completion_frames=[10])
    )
    got = frame_targets(train_data, 0)
    np.testing.assert_allclose(got[:11], np.arange(11) / 10, atol=1e-6)  # 1 at the completion frame
    np.testing.assert_allclose(got[10:], 1.0, atol=1e-6)  # and held after it
    # an episode without a completion frame keeps the ramp over its whole length
    np.testing.assert_allclose(frame_targets(train_data, 2), single_stage_targets(LENGTHS[2])[1], atol=1e-6)


def test_completion_frame_zero_is_complete_from_the_start():
    _, tau = episode_targets(8, None, ["task"], [1.0], failed=False, completion_frame=0)
    np.testing.assert_allclose(tau, 1.0)


def test_failures_run_on_the_clock_of_the_successes_completion(tiny_dataset, tmp_path):
    # successes 0 and 2 complete at frames 10 and 12: their clock is the median of 11 and 13 frames, 12;
    # failed episode 1 (failure frame 20, held) ramps at t / 11 before it, capped below 1
    cfg = tiny_sarm_cfg(tiny_dataset[0], tmp_path, completed_episodes=[0, 2], completion_frames=[10, 12],
               failed_episodes=[1], failure_frames=[20], failure_target="hold")  # fmt: skip
    _, train_data, _ = prepare(cfg)
    got = frame_targets(train_data, 1)
    ramp = np.minimum(np.arange(LENGTHS[1]) / 11, 1.0)
    assert got[5] == pytest.approx(ramp[5])
    # without completion frames the clock is the successes' median length (18 frames): another ramp
    _, plain, _ = prepare(tiny_sarm_cfg(tiny_dataset[0], tmp_path, failed_episodes=[1], failure_frames=[20],
                               failure_target="hold"))  # fmt: skip
    assert frame_targets(plain, 1)[5] == pytest.approx(5 / 17)


def test_completion_frame_column_and_flags(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset[0], root)
    column = {0: 4, 1: None, 2: -1}  # episode 1: unknown; 2: negative = unknown
    for path in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        values = [column[e] for e in table["episode_index"].to_pylist()]
        pq.write_table(table.append_column("done_at", pa.array(values, pa.int64())), path)
    lengths = dict(enumerate(LENGTHS))
    assert completion_frames(
        tiny_sarm_cfg(root, tmp_path, completion_frame_column="done_at"), root, lengths, {}, False
    ) == {0: 4}
    # a flag wins over the column for its episode
    cfg = tiny_sarm_cfg(
        root, tmp_path, completion_frame_column="done_at", completed_episodes=[0, 1], completion_frames=[6, 3]
    )
    assert completion_frames(cfg, root, lengths, {}, False) == {0: 6, 1: 3}


@pytest.mark.parametrize(
    ("flags", "failed", "annotated", "message"),
    [
        (
            {"completed_episodes": [0, 2], "completion_frames": [5]},
            {},
            False,
            "one frame per completed episode",
        ),
        ({"completed_episodes": [0], "completion_frames": [20]}, {}, False, "outside their episode"),
        ({"completed_episodes": [1], "completion_frames": [3]}, {1: 2}, False, "both failed and completed"),
        ({"completed_episodes": [0], "completion_frames": [3]}, {}, True, "subtask annotations"),
    ],
)
def test_completion_frames_refused(tiny_dataset, tmp_path, flags, failed, annotated, message):
    root = tiny_dataset[0]
    with pytest.raises(DatasetError, match=message):
        completion_frames(
            tiny_sarm_cfg(root, tmp_path, **flags), root, dict(enumerate(LENGTHS)), failed, annotated
        )
