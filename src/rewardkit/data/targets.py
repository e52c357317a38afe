"""Progress targets: small pure functions, arrays in, arrays out, no I/O.

Every reward model here learns from per-frame progress targets in [0, 1]. Shapes: T is the number of
frames of one episode, K the number of subtasks (stages) of an annotation scheme.

- `linear_progress`: RewACT's labels (0 up to a start margin, 1 from an end margin, linear between).
- `keyframe_progress`: rewards given at a few frames (grasp 0.5, place 1.0), interpolated monotonically.
- `failure_progress`: targets of a failed episode (held below 1, falling where the failure happens).
- `episode_progress`: the two above and `linear_progress` combined, for one episode.
- `stage_tau_targets`, `single_stage_targets`: SARM's per-frame stage index and within-stage progress tau.
- `temporal_proportions`: SARM paper formula (1), the dataset-level share of each subtask.
- `normalized_progress`, `stage_tau_from_progress`: SARM paper formula (2) and its inverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rewardkit.errors import RewardkitError

# A failed episode's progress is held at or below this unless the caller chooses another cap.
DEFAULT_FAILED_MAX_PROGRESS = 0.9
# What a failed episode's targets do from its failure frame on: "drop" falls to `drop_to` (what an
# object dropped or knocked away makes of the current progress), "hold" keeps the level reached at the
# failure frame (a stalled attempt: nothing is undone, nothing more is done).
FAILURE_TARGETS = ("drop", "hold")


def _check_length(length: int) -> None:
    if int(length) != length or length <= 0:
        raise RewardkitError(f"episode length must be a positive integer, got {length}")


def linear_progress(length: int, start: float = 0.05, end: float = 0.95) -> np.ndarray:
    """Linear progress over an episode of `length` frames, with margins (RewACT's labels).

    0 up to `start` of the episode, 1 from `end`, linear between. Returns (length,) float32.
    """
    if length <= 0:
        raise RewardkitError(f"episode length must be positive, got {length}")
    if not 0.0 <= start < end <= 1.0:
        raise RewardkitError(f"need 0 <= start < end <= 1, got start={start}, end={end}")
    if length == 1:
        return np.ones(1, dtype=np.float32)
    fraction = np.arange(length, dtype=np.float64) / (length - 1)
    return np.clip((fraction - start) / (end - start), 0.0, 1.0).astype(np.float32)


def keyframe_progress(
    length: int,
    keyframes: Sequence[tuple[int, float]] | Mapping[int, float],
    initial: float = 0.0,
    ramp_from_start: bool = True,
) -> np.ndarray:
    """Per-frame progress from rewards given at a few keyframes. Returns (length,) float32 in [0, 1].

    Args:
        length: T, the number of frames of the episode.
        keyframes: (frame_index, reward) pairs or a {frame_index: reward} mapping; frame indices in
            [0, T), rewards in [0, 1], no frame twice. Order does not matter.
        initial: the progress at the start of the episode (frame 0), unless a keyframe is given at frame 0.
        ramp_from_start: if True (default), frame 0 acts as an extra keyframe with value `initial`, so
            progress rises from `initial` to the first keyframe; if False, `initial` is held until the
            first keyframe, where progress steps to its value.

    Rules:
        - Between two keyframes whose value rises (or stays), progress is linear in the frame index:
          monotone, never above the larger neighbour nor below the smaller (no spline ringing).
        - A keyframe with a lower value than the previous one (an object dropped, a failure) is a step:
          the previous value is held up to the frame before it, and the lower value starts at it.
        - After the last keyframe its value is held to the end of the episode.
        - No keyframes at all: `initial` everywhere.
    """
    _check_length(length)
    pairs = list(keyframes.items()) if isinstance(keyframes, Mapping) else list(keyframes)
    if not 0.0 <= initial <= 1.0:
        raise RewardkitError(f"initial progress must be in [0, 1], got {initial}")
    raw_frames = np.array([float(f) for f, _ in pairs], dtype=np.float64)
    if (~np.isfinite(raw_frames)).any() or (raw_frames != np.round(raw_frames)).any():
        raise RewardkitError(f"keyframe frames must be whole frame indices, got {raw_frames.tolist()}")
    frames = raw_frames.astype(np.int64)
    values = np.array([float(v) for _, v in pairs], dtype=np.float64)
    if np.isnan(values).any() or ((values < 0) | (values > 1)).any():
        raise RewardkitError(f"keyframe rewards must be in [0, 1] (no NaN), got {values.tolist()}")
    if ((frames < 0) | (frames >= length)).any():
        raise RewardkitError(
            f"keyframe frames must be in [0, {length}) for an episode of {length} frames, "
            f"got {frames.tolist()}"
        )
    if len(np.unique(frames)) != len(frames):
        raise RewardkitError(f"a frame has two keyframes: {sorted(frames.tolist())}")
    order = np.argsort(frames)
    frames, values = frames[order], values[order]

    progress = np.full(length, initial, dtype=np.float64)
    if len(frames) == 0:
        return progress.astype(np.float32)
    if frames[0] != 0 and ramp_from_start:
        frames = np.concatenate([[0], frames])
        values = np.concatenate([[initial], values])
    for i in range(len(frames)):
        f0, v0 = frames[i], values[i]
        f1 = frames[i + 1] if i + 1 < len(frames) else length
        if i + 1 < len(frames) and values[i + 1] >= v0:
            ramp = np.arange(f0, f1, dtype=np.float64)
            progress[f0:f1] = v0 + (values[i + 1] - v0) * (ramp - f0) / (f1 - f0)
        else:  # a drop (step at the next keyframe) or the hold after the last keyframe
            progress[f0:f1] = v0
    return progress.astype(np.float32)


def failure_progress(
    length: int,
    base_progress: np.ndarray,
    fail_frame: int | None = None,
    drop_to: float = 0.0,
    max_progress: float = DEFAULT_FAILED_MAX_PROGRESS,
    after: str = "drop",
) -> np.ndarray:
    """Targets of a failed episode from the targets it would have had (`base_progress`, (T,)).

    Rules (returns (T,) float32 in [0, max_progress]):
        - Before `fail_frame`, progress is `base_progress` capped at `max_progress` (< 1): the level
          reached is kept (a linear base rises to the cap and stays there; drops already in a
          keyframe base are kept), and a failed episode never ends at 1.
        - From `fail_frame` on (the frame the failure happened; 0 is a failure from the start):
          `after="drop"` (default): `drop_to` (0 by default) to the end of the episode;
          `after="hold"`: the capped progress at `fail_frame` to the end of the episode.
        - `fail_frame=None` (failed, but no frame known): the capped base, no drop. With a time ramp
          as base this ends at `max_progress`, hardly below a success's 1: such targets teach little
          about failures (measured in issue 15); give the failure frame where it is known.
    """
    _check_length(length)
    base = np.asarray(base_progress, dtype=np.float64)
    if base.shape != (length,):
        raise RewardkitError(f"base_progress must have shape ({length},), got {base.shape}")
    if np.isnan(base).any():
        raise RewardkitError("base_progress contains NaN")
    if not 0.0 <= max_progress < 1.0:
        raise RewardkitError(f"max_progress of a failed episode must be in [0, 1), got {max_progress}")
    if not 0.0 <= drop_to <= max_progress:
        raise RewardkitError(f"drop_to must be in [0, max_progress={max_progress}], got {drop_to}")
    if after not in FAILURE_TARGETS:
        raise RewardkitError(f"failure target must be one of {FAILURE_TARGETS}, got {after!r}")
    progress = np.minimum(np.clip(base, 0.0, 1.0), max_progress)
    if fail_frame is not None:
        if int(fail_frame) != fail_frame or not 0 <= fail_frame < length:
            raise RewardkitError(
                f"failure frame must be a frame of the episode, in [0, {length}), got {fail_frame}"
            )
        fail_frame = int(fail_frame)
        progress[fail_frame:] = drop_to if after == "drop" else progress[fail_frame]
    return progress.astype(np.float32)


def episode_progress(
    length: int,
    keyframes: Sequence[tuple[int, float]] | Mapping[int, float] | None = None,
    failed: bool = False,
    fail_frame: int | None = None,
    start: float = 0.05,
    end: float = 0.95,
    max_progress: float = DEFAULT_FAILED_MAX_PROGRESS,
    drop_to: float = 0.0,
    after: str = "drop",
) -> np.ndarray:
    """Progress targets of one episode (T,) float32: keyframes if given, else linear; failure applied.

    The base is `keyframe_progress(length, keyframes)` when keyframes are given, else
    `linear_progress(length, start, end)`. If the episode `failed` (or a `fail_frame` is given), the
    base goes through `failure_progress(..., fail_frame, drop_to, max_progress, after)`.
    """
    base = keyframe_progress(length, keyframes) if keyframes else linear_progress(length, start, end)
    if failed or fail_frame is not None:
        return failure_progress(
            length, base, fail_frame, drop_to=drop_to, max_progress=max_progress, after=after
        )
    return base


def stage_tau_targets(
    length: int,
    start_frames: Sequence[int] | np.ndarray,
    end_frames: Sequence[int] | np.ndarray,
    stage_ids: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SARM stage and within-stage progress (tau) of every frame, from one scheme's subtasks.

    Args:
        length: T, frames of the episode.
        start_frames, end_frames: (n,) the episode's subtasks in temporal order, frames inclusive.
            Need start <= end, start[k+1] >= end[k] (touching allowed, overlap not), and frames in
            [0, T] (an end of T, as `time * fps` gives for the episode end, means the last frame).
        stage_ids: (n,) the stage index of each subtask in the scheme's global name list (defaults
            to 0..n-1); the returned stage is this id.

    Returns:
        stage (T,) int64 and tau (T,) float32 in [0, 1]. Rules, the same as lerobot's SARM except
        where noted:
        - inside subtask k (start_k <= t <= end_k): stage k, tau = (t - start_k) / (end_k - start_k);
          where subtasks touch (end_k == start_{k+1}) the frame belongs to the earlier one, at tau 1.
        - zero-length subtask (start_k == end_k): its frame gets stage k, tau 1 (it is done there).
        - before the first subtask: stage of the first subtask, tau 0 (lerobot: stage 0).
        - a gap between subtasks k and k+1: stage k, tau 1 (the previous subtask is done).
        - after the last subtask: stage of the last subtask, tau 1 (lerobot: the scheme's last stage,
          tau 0.999; use `np.minimum(stage + tau, K - 1e-3)` if a single number below K is needed).
        - no subtasks: stage 0, tau 0 everywhere.
    """
    _check_length(length)
    starts = np.asarray(start_frames, dtype=np.int64).reshape(-1)
    ends = np.asarray(end_frames, dtype=np.int64).reshape(-1)
    n = len(starts)
    if len(ends) != n:
        raise RewardkitError(f"{n} start frames but {len(ends)} end frames")
    ids = np.arange(n, dtype=np.int64) if stage_ids is None else np.asarray(stage_ids, dtype=np.int64)
    if len(ids) != n:
        raise RewardkitError(f"{n} subtasks but {len(ids)} stage ids")
    check_subtask_frames(length, starts, ends)
    stage = np.zeros(length, dtype=np.int64)
    tau = np.zeros(length, dtype=np.float64)
    if n == 0:
        return stage, tau.astype(np.float32)
    ends = np.minimum(ends, length - 1)
    starts = np.minimum(starts, length - 1)
    t = np.arange(length)
    # The subtask a frame belongs to: the last subtask starting at or before it, unless the frame is
    # the shared boundary of the previous one (earlier subtask wins) ...
    k = np.searchsorted(starts, t, side="right") - 1
    shared = (k > 0) & (t == ends[np.maximum(k - 1, 0)])
    k = np.where(shared, k - 1, k)
    before = k < 0
    k = np.maximum(k, 0)
    duration = (ends[k] - starts[k]).astype(np.float64)
    inside_tau = np.where(duration > 0, (t - starts[k]) / np.maximum(duration, 1.0), 1.0)
    # ... frames past a subtask's end (gap, or after the last) hold it done.
    tau = np.where(t > ends[k], 1.0, np.clip(inside_tau, 0.0, 1.0))
    tau = np.where(before, 0.0, tau)
    stage = ids[k]
    return stage.astype(np.int64), tau.astype(np.float32)


def check_subtask_frames(length: int, start_frames: np.ndarray, end_frames: np.ndarray) -> None:
    """Raise ValueError unless subtasks (n,) are in order, do not overlap and lie within [0, length]."""
    starts = np.asarray(start_frames)
    ends = np.asarray(end_frames)
    if len(starts) == 0:
        return
    if (starts < 0).any() or (ends > length).any():
        raise RewardkitError(
            f"subtask frames must lie within the episode [0, {length}], got starts {starts.tolist()}, "
            f"ends {ends.tolist()}"
        )
    if (ends < starts).any():
        raise RewardkitError(
            f"a subtask ends before it starts: starts {starts.tolist()}, ends {ends.tolist()}"
        )
    if (starts[1:] < starts[:-1]).any():
        raise RewardkitError(f"subtasks are out of order: starts {starts.tolist()}")
    if (starts[1:] < ends[:-1]).any():
        raise RewardkitError(f"subtasks overlap: starts {starts.tolist()}, ends {ends.tolist()}")


def single_stage_targets(length: int) -> tuple[np.ndarray, np.ndarray]:
    """SARM's `single_stage` mode: one stage (0) covering the episode, tau linear from 0 to 1.

    Returns stage (T,) int64 of zeros and tau (T,) float32 = t / (T - 1) (1 for a one-frame episode).
    """
    _check_length(length)
    tau = np.ones(1) if length == 1 else np.arange(length, dtype=np.float64) / (length - 1)
    return np.zeros(length, dtype=np.int64), tau.astype(np.float32)


def temporal_proportions(
    episodes: Sequence[tuple[Sequence[str], Sequence[int], Sequence[int], int]],
    names_order: Sequence[str],
) -> dict[str, float]:
    """Dataset-level share of each subtask, SARM paper formula (1), normalised to sum to 1.

    alpha_k = mean over the episodes i that contain subtask k of L_{i,k} / T_i, with L_{i,k} the
    subtask's duration in frames (end - start, summed if it occurs twice) and T_i the episode length;
    then divided by the sum over k so the proportions sum to 1.

    Args:
        episodes: one (names (n,), start_frames (n,), end_frames (n,), length T) tuple per episode.
        names_order: the scheme's subtask names (K,), the order of the returned dict.

    Differences from lerobot 0.6's `compute_temporal_proportions`: lerobot divides by the summed
    subtask durations of the episode (not its length), measures durations from whole-second MM:SS
    strings (sub-second subtasks count 0), keeps only the last occurrence of a repeated name and
    silently omits names no episode contains. Here a name of `names_order` that no episode contains is
    an error (a stage with no share would be unreachable in normalised progress), and so is a name
    outside `names_order`. Both agree when subtasks tile the episode exactly.
    """
    order = list(names_order)
    if not order:
        raise RewardkitError("names_order is empty")
    fractions: dict[str, list[float]] = {name: [] for name in order}
    for i, (names, starts, ends, length) in enumerate(episodes):
        _check_length(length)
        per_episode: dict[str, float] = {}
        for name, start, end in zip(names, starts, ends, strict=True):
            if name not in fractions:
                raise RewardkitError(f"episode entry {i}: subtask '{name}' is not one of {order}")
            per_episode[name] = per_episode.get(name, 0.0) + (float(end) - float(start)) / float(length)
        for name, fraction in per_episode.items():
            fractions[name].append(fraction)
    missing = [name for name, values in fractions.items() if not values]
    if missing:
        raise RewardkitError(f"no episode contains subtask(s) {missing}; cannot compute their proportion")
    means = {name: float(np.mean(values)) for name, values in fractions.items()}
    total = sum(means.values())
    if total <= 0:
        raise RewardkitError("all subtasks have zero duration; cannot compute temporal proportions")
    return {name: means[name] / total for name in order}


def _proportions_array(proportions: Sequence[float] | np.ndarray) -> np.ndarray:
    alpha = np.asarray(proportions, dtype=np.float64).reshape(-1)
    if len(alpha) == 0 or np.isnan(alpha).any() or (alpha < 0).any() or alpha.sum() <= 0:
        raise RewardkitError(
            f"temporal proportions must be non-negative with a positive sum, got {alpha.tolist()}"
        )
    return alpha / alpha.sum()


def normalized_progress(
    stage: np.ndarray, tau: np.ndarray, proportions: Sequence[float] | np.ndarray
) -> np.ndarray:
    """SARM paper formula (2): progress = P_{k-1} + alpha_k * tau, in [0, 1].

    Args:
        stage: (...,) int stage indices k in [0, K).
        tau: (...,) within-stage progress in [0, 1], same shape as `stage`.
        proportions: (K,) temporal proportions alpha (normalised here to sum to 1, like lerobot).

    Returns (...,) float32; P_{k-1} is the sum of the proportions of the stages before k.
    """
    alpha = _proportions_array(proportions)
    stage = np.asarray(stage)
    tau = np.asarray(tau, dtype=np.float64)
    if stage.shape != tau.shape:
        raise RewardkitError(f"stage {stage.shape} and tau {tau.shape} must have the same shape")
    if stage.size and (stage.min() < 0 or stage.max() >= len(alpha)):
        raise RewardkitError(f"stage indices must be in [0, {len(alpha)}), got {stage.min()}..{stage.max()}")
    cumulative = np.concatenate([[0.0], np.cumsum(alpha)])
    progress = cumulative[stage] + alpha[stage] * np.clip(tau, 0.0, 1.0)
    return np.clip(progress, 0.0, 1.0).astype(np.float32)


def stage_tau_from_progress(
    progress: np.ndarray, proportions: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `normalized_progress`: (...,) progress in [0, 1] -> stage (...,) int64, tau (...,) float32.

    A progress on a boundary P_k maps to the start of the next stage with a positive share (k+1, tau 0);
    progress 1 maps to the last stage with a positive share at tau 1. Stages with zero share are never
    returned (no frame can be in them).
    """
    alpha = _proportions_array(proportions)
    p = np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)
    cumulative = np.cumsum(alpha)
    starts = cumulative - alpha
    last_positive = int(np.nonzero(alpha > 0)[0][-1])
    stage = np.searchsorted(cumulative, p, side="right")
    stage = np.minimum(stage, last_positive)
    safe_alpha = np.where(alpha[stage] > 0, alpha[stage], 1.0)
    tau = np.clip((p - starts[stage]) / safe_alpha, 0.0, 1.0)
    return stage.astype(np.int64), tau.astype(np.float32)
