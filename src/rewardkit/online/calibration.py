"""Calibrated success detection: the `RewardMonitor`'s completion threshold and hold time, chosen from
held-out episodes with known outcomes.

The monitor (with release_threshold = complete_threshold) fires on an episode at threshold θ with a hold
of k frames exactly when some k consecutive frames all reach θ, i.e. when the episode's score
`max_t min(signal[t-k+1 .. t])` (`detection_scores`) is >= θ. So over episodes, for each k, a threshold
gives a false-completion rate (failed episodes that fire) and a detection rate (successful ones that do):
an ROC. `calibrate` picks, among the holds tried, the threshold with the highest detection rate whose
false-completion rate is <= the rate the user accepts; ties go to the shorter hold (earlier detection).

The file (`calibration.json`, beside the model by default) is what `RewardMonitor(calibration=...)` and
`RewardMonitor.from_pretrained` read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_text

CALIBRATION_FILENAME = "calibration.json"
DEFAULT_HOLD_FRAMES = (1, 2, 3, 5, 8, 10, 15, 20, 30)


def detection_scores(signal: np.ndarray, hold_frames: int) -> float:
    """The highest threshold at which `hold_frames` consecutive frames of `signal` (T,) all reach it:
    max over windows of the window minimum. NaN frames never count. -inf when T < hold_frames."""
    values = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=-np.inf)
    if hold_frames < 1:
        raise RewardkitError(f"hold_frames must be >= 1, got {hold_frames}")
    if values.size < hold_frames:
        return -math.inf
    windows = np.lib.stride_tricks.sliding_window_view(values, hold_frames)
    return float(windows.min(axis=1).max())


def roc_points(success_scores: np.ndarray, failure_scores: np.ndarray) -> dict[str, list[float]]:
    """The ROC over episodes: for each distinct score as threshold (descending), the share of failed
    episodes at or above it (false-completion rate) and of successful ones (detection rate).

    Returns {"threshold": [...], "false_rate": [...], "detection_rate": [...]}, starting at (0, 0)
    (threshold +inf).
    """
    success = np.asarray(success_scores, dtype=np.float64)
    failure = np.asarray(failure_scores, dtype=np.float64)
    thresholds = np.unique(np.concatenate([success, failure]))[::-1]
    thresholds = thresholds[np.isfinite(thresholds)]
    return {
        "threshold": [math.inf, *thresholds.tolist()],
        "false_rate": [0.0, *[float(np.mean(failure >= t)) for t in thresholds]],
        "detection_rate": [0.0, *[float(np.mean(success >= t)) for t in thresholds]],
    }


@dataclass
class Calibration:
    """A chosen completion rule and how it was chosen.

    Args:
        complete_threshold: the monitor's threshold (release_threshold is the same: no hysteresis, so the
            monitor does exactly what was measured).
        hold_frames: k, consecutive frames at or above the threshold before completion fires.
        hold_seconds: (k - 1) / fps, the monitor's hold time (the first of the k frames arms it).
        fps: the frame rate of the episodes calibrated on.
        signal: the monitor signal calibrated ("progress").
        max_false_rate: the false-completion rate accepted.
        false_rate: the false-completion rate on the failed episodes at the chosen point.
        detection_rate: the share of successful episodes detected.
        num_success, num_failed: episodes of each outcome.
        roc: the ROC of the chosen hold (`roc_points`).
        holds: per hold tried: hold_frames, threshold, detection_rate, false_rate.
        source: where the scores came from (progress file, head, model).
    """

    complete_threshold: float
    hold_frames: int
    hold_seconds: float
    fps: float
    signal: str
    max_false_rate: float
    false_rate: float
    detection_rate: float
    num_success: int
    num_failed: int
    roc: dict[str, list[float]] = field(default_factory=dict)
    holds: list[dict[str, float]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def monitor_kwargs(self) -> dict[str, Any]:
        """The `RewardMonitor` arguments this calibration sets."""
        return {
            "complete_threshold": self.complete_threshold,
            "release_threshold": self.complete_threshold,
            "hold_seconds": self.hold_seconds,
            "signal": self.signal,
        }

    def describe(self) -> str:
        """One line: the chosen rule and its rates."""
        return (
            f"complete_threshold {self.complete_threshold:.3f}, hold {self.hold_frames} frames "
            f"({self.hold_seconds:.2f} s): detects {self.detection_rate:.0%} of {self.num_success} successful "
            f"episodes, fires on {self.false_rate:.0%} of {self.num_failed} failed (accepted "
            f"{self.max_false_rate:.0%})"
        )


def _threshold_for(
    success: np.ndarray, failure: np.ndarray, max_false_rate: float
) -> tuple[float, float, float]:
    """(threshold, detection rate, false rate): the lowest threshold whose false rate is <= the accepted
    one, placed halfway between the highest failure score allowed to stay below it and the next score
    above (a margin on both sides)."""
    allowed = int(math.floor(max_false_rate * failure.size + 1e-9))
    ranked = np.sort(failure)[::-1]
    # failures at or above the threshold must be at most `allowed`: it must exceed ranked[allowed]
    floor = ranked[allowed] if allowed < ranked.size else -math.inf
    above = np.concatenate([success, failure])
    above = above[above > floor]
    if above.size == 0 or not math.isfinite(float(np.min(above))):
        threshold = min(1.0, floor + 1e-6) if math.isfinite(floor) else 0.0
    else:
        nearest = float(np.min(above))
        threshold = nearest if not math.isfinite(floor) else (floor + nearest) / 2
    return float(threshold), float(np.mean(success >= threshold)), float(np.mean(failure >= threshold))


def calibrate(
    signals: Mapping[int, np.ndarray],
    success: Mapping[int, bool],
    fps: float,
    max_false_rate: float = 0.01,
    hold_frames: Sequence[int] = DEFAULT_HOLD_FRAMES,
    signal: str = "progress",
    source: Mapping[str, Any] | None = None,
) -> Calibration:
    """Choose the completion threshold and hold from episodes with known outcomes.

    Args:
        signals: {episode_index: signal (T,)} (progress in [0, 1]).
        success: {episode_index: True if the episode succeeded}; every episode of `signals` needs one.
        fps: the frame rate (turns hold frames into seconds).
        max_false_rate: the false-completion rate accepted on failed episodes (default 1%).
        hold_frames: the holds tried (k consecutive frames).

    Raises:
        RewardkitError: no successful or no failed episode, an episode without an outcome, bad rates.
    """
    if not 0.0 <= max_false_rate < 1.0:
        raise RewardkitError(f"max_false_rate must lie in [0, 1), got {max_false_rate}")
    if fps <= 0:
        raise RewardkitError(f"fps must be positive, got {fps}")
    missing = sorted(set(signals) - set(success))
    if missing:
        raise RewardkitError(f"episodes {missing} have no known outcome")
    episodes = sorted(signals)
    wins = [e for e in episodes if success[e]]
    losses = [e for e in episodes if not success[e]]
    if not wins or not losses:
        raise RewardkitError(
            f"calibration needs successful and failed episodes with known outcomes; got {len(wins)} "
            f"successful and {len(losses)} failed (mark failures with --failed_episodes or --failure_column)"
        )
    holds, best = [], None
    for k in sorted({int(k) for k in hold_frames}):
        scores_win = np.array([detection_scores(signals[e], k) for e in wins])
        scores_loss = np.array([detection_scores(signals[e], k) for e in losses])
        threshold, detection, false = _threshold_for(scores_win, scores_loss, max_false_rate)
        holds.append(
            {"hold_frames": k, "threshold": threshold, "detection_rate": detection, "false_rate": false}
        )
        if best is None or detection > best[2] + 1e-12:
            best = (k, threshold, detection, false, roc_points(scores_win, scores_loss))
    k, threshold, detection, false, roc = best
    return Calibration(
        complete_threshold=threshold,
        hold_frames=k,
        hold_seconds=(k - 1) / fps,
        fps=float(fps),
        signal=signal,
        max_false_rate=float(max_false_rate),
        false_rate=false,
        detection_rate=detection,
        num_success=len(wins),
        num_failed=len(losses),
        roc=roc,
        holds=holds,
        source=dict(source or {}),
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # the ROC's first threshold (+inf)
    return value


def save_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write `calibration` as JSON at `path`, atomically."""
    return atomic_write_text(path, json.dumps(_json_safe(asdict(calibration)), indent=2))


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file (a folder means `<folder>/calibration.json`).

    Raises:
        RewardkitError: missing, not JSON, or missing a field, naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CALIBRATION_FILENAME
    if not path.is_file():
        raise RewardkitError(f"calibration file {path} not found (write one with `rewardkit calibrate`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["roc"] = {k: [math.inf if v is None else v for v in vs] for k, vs in data.get("roc", {}).items()}
        calibration = Calibration(**data)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
        raise RewardkitError(f"{path} is not a rewardkit calibration file: {error}") from error
    if not 0.0 <= calibration.complete_threshold <= 1.0 or calibration.hold_seconds < 0:
        raise RewardkitError(f"{path}: threshold must lie in [0, 1] and hold_seconds be >= 0")
    return calibration


def calibration_beside(model_path: str | Path | None) -> Path | None:
    """`<model_path>/calibration.json` when `model_path` is a folder holding one, else None."""
    if model_path is None:
        return None
    candidate = Path(model_path) / CALIBRATION_FILENAME
    return candidate if candidate.is_file() else None
