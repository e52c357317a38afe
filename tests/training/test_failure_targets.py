"""Failure-aware SARM training (#15.3): the failure frame flows from `--failure_frames`, a frame column or
keyframes (frame 0 included), and the batches the model trains on carry the failure targets."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sarm_targets_helpers import LENGTHS, frame_targets, tiny_sarm_cfg

from rewardkit.commands.train import parse_train_config
from rewardkit.data.dataset import DatasetError
from rewardkit.data.targets import failure_progress, single_stage_targets
from rewardkit.training.sarm import SARMTrainConfig, prepare


def _cfg(root, tmp_path, **flags) -> SARMTrainConfig:
    # the failed episodes' own clock, so targets are easy to write by hand (the successes' clock, the
    # default, has its own test)
    flags.setdefault("failure_clock", "episode")
    return tiny_sarm_cfg(root, tmp_path, **flags)


@pytest.mark.parametrize(("failure_target", "frame"), [("drop", 12), ("hold", 12), ("drop", 0), ("hold", 0)])
def test_failure_targets_reach_the_training_batches(tiny_dataset, tmp_path, failure_target, frame):
    root = tiny_dataset[0]
    cfg = _cfg(root, tmp_path, failed_episodes=[1], failure_frames=[frame], failure_target=failure_target)
    _, train_data, _ = prepare(cfg)
    ramp = single_stage_targets(LENGTHS[1])[1]
    expected = failure_progress(LENGTHS[1], ramp, fail_frame=frame, after=failure_target)
    got = frame_targets(train_data, 1)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # by hand: after the failure frame, 0 (drop) or the ramp's value at the frame (hold: 12/23)
    level = 0.0 if failure_target == "drop" else frame / (LENGTHS[1] - 1)
    np.testing.assert_allclose(got[frame:], level, atol=1e-6)
    np.testing.assert_allclose(got[:frame], ramp[:frame], atol=1e-6)  # the ramp before (below the cap)
    # successes keep the plain ramp, ending at 1
    np.testing.assert_allclose(frame_targets(train_data, 0), single_stage_targets(LENGTHS[0])[1], atol=1e-6)


def test_failure_frame_from_a_column_reaches_the_batches(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset[0], root)
    frames = {0: None, 1: 0, 2: 5}  # episode 0 succeeded; 1 failed from its first frame
    for path in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        column = [frames[e] for e in table["episode_index"].to_pylist()]
        pq.write_table(table.append_column("failure_frame", pa.array(column, pa.int64())), path)
    _, train_data, _ = prepare(
        _cfg(root, tmp_path, failure_frame_column="failure_frame", failure_target="drop")
    )
    np.testing.assert_allclose(frame_targets(train_data, 1), np.zeros(LENGTHS[1]), atol=1e-6)
    expected = np.concatenate([np.arange(5) / (LENGTHS[2] - 1), np.zeros(LENGTHS[2] - 5)])
    np.testing.assert_allclose(frame_targets(train_data, 2), expected, atol=1e-6)
    assert frame_targets(train_data, 0)[-1] == pytest.approx(1.0)
    # the default holds the level reached at the frame (episode 2: 5/15 from frame 5 on)
    _, held, _ = prepare(_cfg(root, tmp_path, failure_frame_column="failure_frame"))
    expected = np.concatenate([np.arange(5), np.full(LENGTHS[2] - 5, 5)]) / (LENGTHS[2] - 1)
    np.testing.assert_allclose(frame_targets(held, 2), expected, atol=1e-6)


def test_failure_flags_parse_and_bad_values_are_named(tiny_dataset, tmp_path, caplog):
    cfg = parse_train_config(["--model.type=sarm", "--failed_episodes=[1,2]", "--failure_frames=[0,7]",
                              "--failure_target=hold", "--failure_frame_column=failed_at"])  # fmt: skip
    assert (cfg.failed_episodes, cfg.failure_frames, cfg.failure_target) == ([1, 2], [0, 7], "hold")
    assert cfg.failure_frame_column == "failed_at"
    root = tiny_dataset[0]
    with pytest.raises(DatasetError, match="--failure_frames has 1 frames for 2 --failed_episodes"):
        prepare(_cfg(root, tmp_path, failed_episodes=[1, 2], failure_frames=[3]))
    with pytest.raises(DatasetError, match=r"failure frames \{2: 16\}.*past the end"):
        prepare(_cfg(root, tmp_path, failed_episodes=[2], failure_frames=[16]))
    with pytest.raises(DatasetError, match="--failure_target must be one of"):
        prepare(_cfg(root, tmp_path, failed_episodes=[2], failure_target="fall"))
    with caplog.at_level(logging.WARNING):
        prepare(_cfg(root, tmp_path, failed_episodes=[2]))
    assert any("[2] have no failure frame" in m for m in caplog.messages)


def test_staged_failure_targets_hold_or_drop_by_hand():
    from rewardkit.data.targets import normalized_progress
    from rewardkit.training.sarm import episode_targets

    # two stages of 10 frames each, proportions 0.25 / 0.75; failure at frame 14 (stage 1, tau 4/9)
    annotation = (["x", "y"], np.array([0, 10]), np.array([9, 19]))
    level = 0.25 + 0.75 * 4 / 9
    for target, after in (("hold", level), ("drop", 0.0)):
        stage, tau = episode_targets(20, annotation, ["x", "y"], [0.25, 0.75], True, 14, target)
        progress = normalized_progress(stage, tau, [0.25, 0.75])
        np.testing.assert_allclose(progress[14:], after, atol=1e-6)
        np.testing.assert_allclose(progress[:10], 0.25 * np.arange(10) / 9, atol=1e-6)


def test_failed_episode_timed_on_the_successes_clock(tiny_dataset, tmp_path):
    root = tiny_dataset[0]
    flags = dict(failed_episodes=[1], failure_frames=[12], failure_target="hold")
    # own clock: episode 1's ramp runs over its 24 frames, held from frame 12 at 12/23
    _, own, _ = prepare(_cfg(root, tmp_path, failure_clock="episode", **flags))
    np.testing.assert_allclose(frame_targets(own, 1)[12:], 12 / 23, atol=1e-6)
    # successes' clock: the median length of the successes of its task (episodes 0 and 2: 20 and 16 -> 18)
    assert SARMTrainConfig().failure_clock == "successes"  # the default
    _, clocked, _ = prepare(_cfg(root, tmp_path, failure_clock="successes", **flags))
    got = frame_targets(clocked, 1)
    np.testing.assert_allclose(got[:12], np.arange(12) / 17, atol=1e-6)
    np.testing.assert_allclose(got[12:], 12 / 17, atol=1e-6)
    # successes keep their own ramp, ending at 1
    np.testing.assert_allclose(frame_targets(clocked, 2), single_stage_targets(LENGTHS[2])[1], atol=1e-6)
    with pytest.raises(DatasetError, match="--failure_clock must be"):
        prepare(_cfg(root, tmp_path, failure_clock="wall", **flags))


def test_failure_target_per_episode(tiny_dataset, tmp_path):
    root = tiny_dataset[0]
    # episode 1 dropped its object at frame 12, episode 2 stalled at frame 5; the default would hold both
    flags = dict(failed_episodes=[1, 2], failure_frames=[12, 5], failure_targets=["drop", "hold"])
    _, data, _ = prepare(_cfg(root, tmp_path, **flags))
    np.testing.assert_allclose(frame_targets(data, 1)[12:], 0.0, atol=1e-6)
    np.testing.assert_allclose(frame_targets(data, 1)[:12], np.arange(12) / 23, atol=1e-6)
    np.testing.assert_allclose(frame_targets(data, 2)[5:], 5 / 15, atol=1e-6)
    cfg = parse_train_config(
        ["--model.type=sarm", "--failed_episodes=[1,2]", "--failure_targets=[drop,hold]"]
    )
    assert cfg.failure_targets == ["drop", "hold"]
    with pytest.raises(DatasetError, match="--failure_targets has 1 values for 2 --failed_episodes"):
        prepare(
            _cfg(root, tmp_path, failed_episodes=[1, 2], failure_frames=[12, 5], failure_targets=["drop"])
        )
    with pytest.raises(DatasetError, match=r"one of \('drop', 'hold'\); got \{2: 'fall'\}"):
        prepare(_cfg(root, tmp_path, **{**flags, "failure_targets": ["drop", "fall"]}))
