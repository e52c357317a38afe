"""Calibrated success detection: a known ROC on synthetic scores, the hold that rejects a spike, the file
beside the model, and a monitor that then fires exactly where the calibration says it does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardkit.errors import RewardkitError
from rewardkit.online import RewardMonitor
from rewardkit.online.calibration import (
    calibrate,
    detection_scores,
    load_calibration,
    roc_points,
    save_calibration,
)

FPS = 10.0


def _flat(level: float, frames: int = 20) -> np.ndarray:
    return np.full(frames, level)


def test_roc_of_constant_scores_is_the_hand_computed_one():
    roc = roc_points(np.array([0.95, 0.9, 0.85, 0.7]), np.array([0.2, 0.5, 0.8]))
    assert roc["threshold"][1:] == [0.95, 0.9, 0.85, 0.8, 0.7, 0.5, 0.2]
    np.testing.assert_allclose(roc["false_rate"], [0, 0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(roc["detection_rate"], [0, 0.25, 0.5, 0.75, 0.75, 1, 1, 1])


def test_threshold_at_the_accepted_false_rate():
    signals = {i: _flat(v) for i, v in enumerate([0.95, 0.9, 0.85, 0.7, 0.2, 0.5, 0.8])}
    success = {i: i < 4 for i in signals}
    strict = calibrate(signals, success, FPS, max_false_rate=0.01, hold_frames=[1])
    # no failure may fire: halfway between the highest failure (0.8) and the next score above (0.85)
    assert strict.complete_threshold == pytest.approx(0.825)
    assert strict.false_rate == 0 and strict.detection_rate == 0.75
    assert strict.num_success == 4 and strict.num_failed == 3 and strict.hold_seconds == 0
    lenient = calibrate(signals, success, FPS, max_false_rate=0.34, hold_frames=[1])
    assert lenient.complete_threshold == pytest.approx(0.6)  # one failure (0.8) may fire: between 0.5 and 0.7
    assert lenient.detection_rate == 1.0 and lenient.false_rate == pytest.approx(1 / 3)


def test_a_longer_hold_rejects_a_one_frame_spike():
    failure = _flat(0.3)
    failure[10] = 0.99  # one glitching frame
    success = np.r_[np.linspace(0, 0.9, 15), np.full(5, 0.95)]
    assert detection_scores(failure, 1) == 0.99 and detection_scores(failure, 3) == pytest.approx(0.3)
    result = calibrate({0: success, 1: failure}, {0: True, 1: False}, FPS, hold_frames=[1, 3])
    assert result.hold_frames == 3 and result.hold_seconds == pytest.approx(0.2)
    assert result.detection_rate == 1.0 and result.false_rate == 0.0
    by_hold = {h["hold_frames"]: h for h in result.holds}
    assert by_hold[1]["detection_rate"] == 0.0  # the spike forces the 1-frame threshold above every success


def _replay(monitor: RewardMonitor, curve: np.ndarray) -> bool:
    monitor.reset()
    for value in curve:
        monitor.step({"value": float(value)})
    return monitor.done


def test_the_monitor_fires_exactly_where_the_calibration_says(tmp_path):
    rng = np.random.default_rng(0)
    curves, outcomes = {}, {}
    for e in range(40):
        won = e % 2 == 0
        top = rng.uniform(0.85, 1.0) if won else rng.uniform(0.3, 0.9)
        curves[e] = np.clip(np.linspace(0, top, 30) + rng.normal(0, 0.04, 30), 0, 1)
        outcomes[e] = won
    calibration = calibrate(curves, outcomes, FPS, max_false_rate=0.05)
    path = save_calibration(calibration, tmp_path / "model" / "calibration.json")
    monitor = RewardMonitor(lambda obs: obs["value"], fps=FPS, stall_seconds=None, calibration=path.parent)
    assert monitor.complete_threshold == pytest.approx(calibration.complete_threshold)
    assert monitor.release_threshold == monitor.complete_threshold
    assert monitor.hold_seconds == pytest.approx(calibration.hold_seconds)
    fired = {e: _replay(monitor, c) for e, c in curves.items()}
    expected = {
        e: detection_scores(c, calibration.hold_frames) >= calibration.complete_threshold
        for e, c in curves.items()
    }
    assert fired == expected
    assert np.mean([fired[e] for e in curves if not outcomes[e]]) == pytest.approx(calibration.false_rate)
    assert np.mean([fired[e] for e in curves if outcomes[e]]) == pytest.approx(calibration.detection_rate)
    # explicit arguments still win over the file
    assert RewardMonitor(lambda o: 0.0, calibration=path, complete_threshold=0.5).complete_threshold == 0.5


def test_from_pretrained_uses_the_calibration_beside_the_model(tmp_path, monkeypatch):
    import rewardkit

    model = tmp_path / "model"
    model.mkdir()
    monkeypatch.setattr(rewardkit, "load", lambda path, device=None: lambda obs: 0.0)
    assert RewardMonitor.from_pretrained(model).complete_threshold == 0.9  # no file: the defaults
    calibration = calibrate({0: _flat(0.9), 1: _flat(0.2)}, {0: True, 1: False}, FPS, hold_frames=[4])
    save_calibration(calibration, model / "calibration.json")
    monitor = RewardMonitor.from_pretrained(model)
    assert monitor.complete_threshold == pytest.approx(0.55) and monitor.hold_seconds == pytest.approx(0.3)
    assert RewardMonitor.from_pretrained(model, calibration=None).complete_threshold == 0.9


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(RewardkitError, match="successful and failed"):
        calibrate({0: _flat(0.9)}, {0: True}, FPS)
    with pytest.raises(RewardkitError, match="no known outcome"):
        calibrate({0: _flat(0.9), 1: _flat(0.1)}, {0: True}, FPS)
    (tmp_path / "bad.json").write_text(json.dumps({"complete_threshold": 0.5}))
    with pytest.raises(RewardkitError, match="not a rewardkit calibration file"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(RewardkitError, match="not found"):
        RewardMonitor(lambda o: 0.0, calibration=tmp_path / "nowhere")


def test_calibrate_command_saves_beside_the_model_and_refuses_to_overwrite(tiny_dataset, tmp_path, capsys):
    import pandas as pd

    from rewardkit.cli import main
    from rewardkit.data.dataset import open_dataset

    root, _ = tiny_dataset
    model = tmp_path / "checkpoint"
    model.mkdir()
    frames = [
        pd.DataFrame(
            {
                "index": np.arange(info.from_index, info.to_index),
                "episode_index": info.episode_index,
                "frame_index": np.arange(info.length),
                "progress_sparse": np.linspace(0, 0.4 if info.episode_index == 1 else 1.0, info.length),
            }
        )
        for info in open_dataset(root=root).episodes()
    ]
    progress = tmp_path / "progress.parquet"
    pd.concat(frames).to_parquet(progress)
    args = ["calibrate", f"--progress_path={progress}", f"--dataset.root={root}", "--failed_episodes=[1]"]
    assert main(args) == 2 and "--model_path" in capsys.readouterr().err  # no model recorded in the file
    args.append(f"--model_path={model}")
    assert main(args) == 0
    calibration = load_calibration(model)
    assert calibration.num_failed == 1 and calibration.num_success == 2 and calibration.false_rate == 0
    assert 0.4 < calibration.complete_threshold < 1.0 and calibration.detection_rate == 1.0
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
