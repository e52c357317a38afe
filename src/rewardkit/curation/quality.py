"""Per-episode quality from a progress curve, and the keep / look / drop verdict. Pure: arrays in,
dataclasses out, no I/O.

One episode's curve (T,) gives its own numbers (`episode_metrics`): final progress, time to completion,
regressions (drops below the best progress so far), stalls (time without a new best), monotonicity (VOC).
The outlier score compares an episode with its peers (`robust_z` of the durations), so it needs the whole
dataset: `curate` takes every curve at once and returns the judged episodes sorted worst first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.evaluation.metrics import value_order_correlation

VERDICTS = ("drop", "look", "keep")  # worst first: the sort order of the table


@dataclass(frozen=True)
class CurationThresholds:
    """The rules of the verdict. Progress is in [0, 1]; times in seconds.

    Args:
        success_progress: progress that counts as the task done (time to completion is the first frame at
            or above it; a final progress below it is "unfinished", look).
        failure_progress: a final progress below it is a failed demonstration (drop).
        final_frames: the final progress is the median of the last `final_frames` frames (one noisy last
            frame does not decide).
        regression_depth: a fall below the best progress so far deeper than this counts as a regression.
        regression_look: a deepest regression at or above this flags the episode (look).
        stall_epsilon: a rise above the best progress so far smaller than this is not progress.
        stall_look_seconds: a stall (before completion) at least this long flags the episode (look).
        outlier_z: a robust z-score of the duration at or beyond this (either side) flags the episode.
    """

    success_progress: float = 0.9
    failure_progress: float = 0.5
    final_frames: int = 3
    regression_depth: float = 0.1
    regression_look: float = 0.2
    stall_epsilon: float = 0.01
    stall_look_seconds: float = 2.0
    outlier_z: float = 3.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_progress <= self.success_progress <= 1.0:
            raise RewardkitError(
                "need 0 <= failure_progress <= success_progress <= 1, got "
                f"{self.failure_progress} and {self.success_progress}"
            )
        if self.final_frames < 1:
            raise RewardkitError(f"final_frames must be >= 1, got {self.final_frames}")
        if min(self.regression_depth, self.regression_look, self.stall_epsilon, self.stall_look_seconds) < 0:
            raise RewardkitError("regression, stall and epsilon thresholds must be >= 0")
        if self.outlier_z <= 0:
            raise RewardkitError(f"outlier_z must be positive, got {self.outlier_z}")


@dataclass(frozen=True)
class EpisodeMetrics:
    """What one progress curve says about its episode (no peers involved).

    Args:
        episode_index: the episode.
        num_frames: T.
        duration_s: T / fps.
        final_progress: median of the last `final_frames` frames.
        max_progress: the highest progress reached.
        time_to_completion_s: time of the first frame at or above `success_progress`; None if never.
        num_regressions: falls below the best progress so far deeper than `regression_depth` (each
            counted once, until progress is back above the level it fell from minus that depth).
        deepest_regression: the largest fall below the best progress so far (0 for a monotone curve).
        longest_stall_s: the longest time without a new best (rise > `stall_epsilon`), up to completion
            (waiting after the task is done is not hesitation).
        monotonicity: VOC, Spearman between progress and time, in [-1, 1].
    """

    episode_index: int
    num_frames: int
    duration_s: float
    final_progress: float
    max_progress: float
    time_to_completion_s: float | None
    num_regressions: int
    deepest_regression: float
    longest_stall_s: float
    monotonicity: float


@dataclass(frozen=True)
class EpisodeQuality:
    """An episode's metrics, its outlier score against its peers and the verdict.

    Args:
        metrics: `EpisodeMetrics`.
        outlier_score: robust z-score of the duration among all episodes (positive: slower than peers).
        verdict: "keep", "look" or "drop".
        reasons: why (empty for a clean keep), worst first.
        disagreement: the episode's mean `progress_std` when the progress came from an ensemble (how much
            its members disagree on this episode: high is worth a look); None otherwise. Not part of the
            verdict.
    """

    metrics: EpisodeMetrics
    outlier_score: float
    verdict: str
    reasons: tuple[str, ...] = field(default_factory=tuple)
    disagreement: float | None = None

    @property
    def episode_index(self) -> int:
        return self.metrics.episode_index

    @property
    def reason(self) -> str:
        """The reasons in one line ("clean" when there is none)."""
        return "; ".join(self.reasons) or "clean"

    def as_row(self) -> dict:
        """A flat dict: every metric, outlier_score, verdict, reason, and disagreement when known (for CSV /
        JSON)."""
        from dataclasses import asdict

        row = {
            **asdict(self.metrics),
            "outlier_score": self.outlier_score,
            "verdict": self.verdict,
            "reason": self.reason,
        }
        if self.disagreement is not None:
            row["disagreement"] = self.disagreement
        return row


def _longest_stall_frames(progress: np.ndarray, epsilon: float) -> int:
    """Longest run of frames with no new best (a rise of more than `epsilon` over the best so far).

    The same rule as the online monitor's stall, so a curated "stall" means what the monitor would flag.
    """
    best = progress[0]
    last_rise = 0
    longest = 0
    for t in range(1, progress.size):
        if progress[t] > best + epsilon:
            best = progress[t]
            last_rise = t
        longest = max(longest, t - last_rise)
    return longest


def _regressions(progress: np.ndarray, depth: float) -> tuple[int, float]:
    """(count of falls deeper than `depth` below the running best, deepest fall)."""
    running_best = np.maximum.accumulate(progress)
    fall = running_best - progress
    deepest = float(fall.max()) if fall.size else 0.0
    below = fall > depth
    # a regression starts where the curve goes below (best - depth) and ends when it climbs back
    count = int(np.count_nonzero(below[1:] & ~below[:-1]) + (1 if below.size and below[0] else 0))
    return count, deepest


def episode_metrics(
    progress: np.ndarray,
    fps: float,
    episode_index: int = 0,
    thresholds: CurationThresholds | None = None,
) -> EpisodeMetrics:
    """The metrics of one episode from its progress curve (T,) sampled at `fps`.

    NaN frames (not labelled) are dropped; an all-NaN curve is refused.

    Raises:
        RewardkitError: empty or all-NaN curve, or fps <= 0.
    """
    t = thresholds or CurationThresholds()
    if fps <= 0:
        raise RewardkitError(f"fps must be positive, got {fps}")
    curve = np.asarray(progress, dtype=np.float64).ravel()
    num_frames = int(curve.size)
    curve = curve[np.isfinite(curve)]
    if curve.size == 0:
        raise RewardkitError(f"episode {episode_index}: no finite progress to judge")
    final = float(np.median(curve[-t.final_frames :]))
    reached = np.flatnonzero(curve >= t.success_progress)
    completion_frame = int(reached[0]) if reached.size else None
    count, deepest = _regressions(curve, t.regression_depth)
    until = curve if completion_frame is None else curve[: completion_frame + 1]
    return EpisodeMetrics(
        episode_index=int(episode_index),
        num_frames=num_frames,
        duration_s=num_frames / fps,
        final_progress=final,
        max_progress=float(curve.max()),
        time_to_completion_s=None if completion_frame is None else completion_frame / fps,
        num_regressions=count,
        deepest_regression=deepest,
        longest_stall_s=_longest_stall_frames(until, t.stall_epsilon) / fps,
        monotonicity=value_order_correlation(curve),
    )


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores (N,): (x - median) / (1.4826 * MAD), the modified z of Iglewicz and Hoaglin.

    When more than half the values are equal (MAD = 0), the mean absolute deviation scaled by 1.2533
    stands in for it; when every value is equal, all scores are 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    deviation = values - np.median(values)
    mad = float(np.median(np.abs(deviation)))
    if mad > 0:
        return deviation / (1.4826 * mad)
    mean_ad = float(np.mean(np.abs(deviation)))
    if mean_ad > 0:
        return deviation / (1.2533 * mean_ad)
    return np.zeros_like(values)


def verdict(
    metrics: EpisodeMetrics, outlier_score: float, thresholds: CurationThresholds | None = None
) -> EpisodeQuality:
    """Judge one episode: drop a failed one, look at an unfinished, regressing, stalling or outlying one,
    keep the rest. Every rule that fires adds its reason, worst first."""
    t = thresholds or CurationThresholds()
    m = metrics
    drops, looks = [], []
    if m.final_progress < t.failure_progress:
        drops.append(f"failed: final progress {m.final_progress:.2f} < {t.failure_progress:g}")
    elif m.final_progress < t.success_progress:
        looks.append(f"unfinished: final progress {m.final_progress:.2f} < {t.success_progress:g}")
    if m.deepest_regression >= t.regression_look:
        looks.append(
            f"regression: progress fell {m.deepest_regression:.2f} below its best "
            f"({m.num_regressions} drop{'s' if m.num_regressions != 1 else ''} > {t.regression_depth:g})"
        )
    if m.longest_stall_s >= t.stall_look_seconds:
        looks.append(f"stall: {m.longest_stall_s:.1f} s without progress")
    if abs(outlier_score) >= t.outlier_z:
        side = "slow" if outlier_score > 0 else "fast"
        looks.append(f"{side}: {m.duration_s:.1f} s, robust z {outlier_score:+.1f} against its peers")
    kind = "drop" if drops else "look" if looks else "keep"
    return EpisodeQuality(m, float(outlier_score), kind, tuple(drops + looks))


def curate(
    curves: Mapping[int, np.ndarray],
    fps: float,
    thresholds: CurationThresholds | None = None,
    disagreement: Mapping[int, float] | None = None,
) -> list[EpisodeQuality]:
    """Judge every episode of a dataset: {episode_index: progress (T,)} -> judged episodes, worst first.

    Worst first: drop, then look, then keep; within a verdict, lower final progress, then the larger
    outlier score. `disagreement` ({episode_index: mean progress_std}, an ensemble's) is carried into
    each episode's row, not judged.
    """
    if not curves:
        raise RewardkitError("no episodes to curate")
    t = thresholds or CurationThresholds()
    metrics = [episode_metrics(curve, fps, int(e), t) for e, curve in sorted(curves.items())]
    scores = robust_z(np.array([m.duration_s for m in metrics]))
    judged = [verdict(m, float(z), t) for m, z in zip(metrics, scores, strict=True)]
    if disagreement is not None:
        judged = [replace(q, disagreement=disagreement.get(q.episode_index)) for q in judged]
    return sorted(
        judged,
        key=lambda q: (
            VERDICTS.index(q.verdict),
            q.metrics.final_progress,
            -abs(q.outlier_score),
            q.episode_index,
        ),
    )
