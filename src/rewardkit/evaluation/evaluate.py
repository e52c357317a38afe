"""Evaluate models' progress predictions on held-out episodes, always beside two baselines.

Ground truth comes in through a simple function API (`EpisodeTruth` per episode: success flag, optional
progress targets (T,), optional true stages (T,), the failure kind), so a simulator can pass its own
ground truth; the CLI builds it from the dataset with `ground_truth_from_dataset`.

Failure MAE is scored only against progress the data really provides (ground-truth columns, keyframes, a
known failure frame): a failed attempt's progress is unknown otherwise, and scoring it against an assumed
time ramp would reward a predictor of time. The summary says when no failed episode could be scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.data.annotations import episode_metadata_column
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.metrics import (
    constant_progress,
    elapsed_fraction,
    mean_absolute_error,
    roc_auc,
    stage_accuracy,
    value_order_correlation,
)

GROUND_TRUTH_PROGRESS = "ground_truth.progress"  # the current progress (falls back when a task goes back)
GROUND_TRUTH_REACHED = "ground_truth.progress_reached"  # the progress reached so far (its running maximum)
# Where an episode's progress targets came from; failures are scored against all but the assumed ramp.
ASSUMED_RAMP = "assumed ramp"
NO_FAILURE_PROGRESS_NOTE = (
    "no failed episode has known progress (no ground_truth.progress column, keyframes or failure frame): "
    "failure MAE is not scored"
)
ELAPSED_BASELINE = "baseline: elapsed fraction"
CONSTANT_BASELINE = "baseline: constant 0.5"

Predictions = Mapping[int, Mapping[str, np.ndarray]]  # episode_index -> {"progress": (T,), ...}


@dataclass
class EpisodeTruth:
    """What is known about one episode.

    Args:
        episode_index: the episode's index.
        length: number of frames T.
        success: whether the attempt succeeded.
        progress: (T,) target progress in [0, 1], or None when unknown.
        stages: (T,) int true stage per frame, or None when unknown.
        task: the task text (for plots).
        kind: "success" or the kind of failure (e.g. "drop"), None when unknown; results are broken down
            by it.
        progress_reached: (T,) the progress reached so far (running maximum of the true progress), or None.
        progress_source: where `progress` comes from ("given", "ground truth", "keyframes", "failure
            frame", or ASSUMED_RAMP: a time ramp assumed for lack of anything better, never used to score
            a failure).
    """

    episode_index: int
    length: int
    success: bool = True
    progress: np.ndarray | None = None
    stages: np.ndarray | None = None
    task: str = ""
    kind: str | None = None
    progress_reached: np.ndarray | None = None
    progress_source: str = "given"


def sim_episode_kinds(root: str | Path) -> dict[int, str]:
    """{episode_index: "success" or failure kind} of a `rewardkit sim` dataset; {} for any other dataset."""
    from rewardkit.sim.metaworld_sim import SIM_META_FILE, read_ground_truth

    if not (Path(root) / SIM_META_FILE).exists():
        return {}
    return {i: truth.kind for i, truth in read_ground_truth(root).items()}


def _failure_frames_from(
    root: Path,
    failure_frames: Mapping[int, int] | None,
    failure_frame_column: str | None,
    lengths: Mapping[int, int],
) -> dict[int, int]:
    """Failure frames given directly (a mapping, or a per-episode column: null or negative = none)."""
    frames: dict[int, int] = {}
    if failure_frame_column is not None:
        for episode_index, value in episode_metadata_column(root, failure_frame_column).items():
            if int(value) >= 0:
                frames[episode_index] = int(value)
    frames.update({int(e): int(f) for e, f in (failure_frames or {}).items()})
    for episode_index, frame in frames.items():
        length = lengths.get(episode_index)
        where = (
            f"--failure_frames / column {failure_frame_column!r}"
            if failure_frame_column
            else "--failure_frames"
        )
        if length is None:
            raise RewardkitError(f"{where}: episode {episode_index} is not an episode of {root}")
        if not 0 <= frame < length:
            raise RewardkitError(
                f"{where}: failure frame {frame} of episode {episode_index} is outside its {length} frames "
                f"(frames are counted from 0 within the episode)"
            )
    return frames


def ground_truth_from_dataset(
    dataset: Any,
    failed_episodes: Sequence[int] = (),
    progress_target: Callable[[int, bool], np.ndarray | None] | None = None,
    keyframes: str | Path | None = None,
    failure_column: str | None = None,
    stage_scheme: str | None = "sparse",
    failure_frames: Mapping[int, int] | None = None,
    failure_frame_column: str | None = None,
    kind_column: str | None = None,
) -> dict[int, EpisodeTruth]:
    """Ground truth for the selected episodes of a `RewardDataset`, from the dataset's own annotations.

    Failures: `failed_episodes`, a per-episode `failure_column` of meta/episodes (true = failed), the
    keyframes file (`keyframes`: its failed list, or keyframes that drop), failure frames given directly
    (`failure_frames` {episode: frame within the episode, 0 included}, or a per-episode
    `failure_frame_column`), and the kinds the dataset records (`rewardkit sim`'s meta/rewardkit_sim.json,
    or a per-episode `kind_column`: "success" or a failure kind).
    Targets: the dataset's `ground_truth.progress` column when it has one (and `ground_truth.progress_
    reached` beside it); else `rewardkit.data.annotations.load_progress_targets` (keyframes when given,
    else linear 5%/95%; failed episodes get failure-aware targets that never end at 1; a failure frame
    drops them to 0 there), or `progress_target(length, failed) -> (T,)` when given. A failed episode
    with none of ground truth, keyframes or a failure frame gets no target (failure MAE skips it).
    True stages: the `stage_scheme` subtask annotations (LeRobot columns) when present.
    """
    from rewardkit.data import annotations
    from rewardkit.data.targets import stage_tau_targets

    root = Path(dataset.root)
    episodes = list(dataset.episodes())
    selected = [ep.episode_index for ep in episodes]
    lengths = {ep.episode_index: ep.length for ep in episodes}
    keyframe_data = None
    if keyframes is not None:
        keyframe_data = annotations.read_keyframes(keyframes, fps=dataset.fps, lengths=lengths)
    kinds = sim_episode_kinds(root)
    if kind_column is not None:
        kinds.update({i: str(v) for i, v in episode_metadata_column(root, kind_column).items()})
    failures = annotations.failed_episodes(
        root,
        explicit=[*failed_episodes, *(i for i, kind in kinds.items() if kind != "success")],
        column=failure_column,
        keyframes=keyframe_data,
    )
    all_lengths = annotations.episode_lengths(root)
    failures.update(_failure_frames_from(root, failure_frames, failure_frame_column, all_lengths))
    has_ground_truth = GROUND_TRUTH_PROGRESS in dataset.features and progress_target is None
    if progress_target is None and not has_ground_truth:
        targets = annotations.load_progress_targets(
            root, keyframes=keyframe_data, failed=failures, episodes=selected
        )
    with_keyframes = set(keyframe_data.episodes) if keyframe_data is not None else set()
    stages = annotations.read_annotations(root, stage_scheme, selected) if stage_scheme else {}
    truths = {}
    for ep in episodes:
        index = ep.episode_index
        failed = index in failures
        reached = None
        if progress_target is not None:
            target, source = progress_target(ep.length, failed), "given"
        elif has_ground_truth:
            keys = [GROUND_TRUTH_PROGRESS] + (
                [GROUND_TRUTH_REACHED] if GROUND_TRUTH_REACHED in dataset.features else []
            )
            columns = dataset.read_columns(index, keys)
            target = np.asarray(columns[GROUND_TRUTH_PROGRESS], dtype=np.float32).reshape(-1)
            if GROUND_TRUTH_REACHED in columns:
                reached = np.asarray(columns[GROUND_TRUTH_REACHED], dtype=np.float32).reshape(-1)
            source = "ground truth"
        else:
            target = targets[index]
            if index in with_keyframes:
                source = "keyframes"
            elif failed and failures[index] is not None:
                source = "failure frame"
            else:
                source = ASSUMED_RAMP
        true_stages = None
        if index in stages:
            subtasks = stages[index]
            true_stages = stage_tau_targets(ep.length, subtasks.start_frames, subtasks.end_frames)[0]
        kind = kinds.get(index, "failure" if failed else "success") if kinds else None
        truths[index] = EpisodeTruth(
            index, ep.length, not failed, target, true_stages, ep.task, kind, reached, source
        )
    return truths


def baseline_predictions(truths: Mapping[int, EpisodeTruth]) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """The two baselines every report shows: elapsed fraction t/(T-1), and a constant 0.5."""
    return {
        ELAPSED_BASELINE: {i: {"progress": elapsed_fraction(t.length)} for i, t in truths.items()},
        CONSTANT_BASELINE: {i: {"progress": constant_progress(t.length)} for i, t in truths.items()},
    }


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def success_failure_margin(finals: np.ndarray, success: np.ndarray) -> float | None:
    """The worst success's final progress minus the best failure's: > 0 when a threshold separates them
    all. finals (N,), success (N,) bool. None when either class is empty."""
    finals, success = np.asarray(finals, dtype=np.float64), np.asarray(success, dtype=bool)
    if not success.any() or success.all():
        return None
    return float(finals[success].min() - finals[~success].max())


def failure_breakdown(episodes: Sequence[Mapping[str, Any]], group: Mapping[int, str]) -> dict[str, dict]:
    """Failure metrics per group of failed episodes (a kind, a family...), each against all successes.

    episodes: the per-episode rows of `evaluate_predictions`; group: {episode_index: group name} of the
    failed episodes (others are left out). Returns {group: {num_episodes, final_progress_mean,
    final_progress_auroc (this group's failures vs every success), margin (worst success - best failure
    of the group), mae_failure, mae_failure_reached, num_scored}}; None where there is no data.
    """
    successes = [e for e in episodes if e["success"]]
    breakdown: dict[str, dict] = {}
    for name in sorted({g for g in group.values()}):
        failed = [e for e in episodes if not e["success"] and group.get(e["episode_index"]) == name]
        if not failed:
            continue
        rows = successes + failed
        finals = np.array([e["final_progress"] for e in rows])
        positive = np.array([e["success"] for e in rows], dtype=bool)
        auroc = roc_auc(finals, positive)
        maes = [e["mae"] for e in failed if e["mae"] is not None]
        reached = [e["mae_reached"] for e in failed if e.get("mae_reached") is not None]
        breakdown[name] = {
            "num_episodes": len(failed),
            "final_progress_mean": float(np.mean([e["final_progress"] for e in failed])),
            "final_progress_auroc": None if np.isnan(auroc) else auroc,
            "margin": success_failure_margin(finals, positive),
            "mae_failure": _mean_std(maes)[0],
            "mae_failure_reached": _mean_std(reached)[0],
            "num_scored": len(maes),
        }
    return breakdown


def evaluate_predictions(predictions: Predictions, truths: Mapping[int, EpisodeTruth]) -> dict[str, Any]:
    """Every metric for one model: per episode, and summarised over episodes.

    Returns {"episodes": [{episode_index, length, success, kind, voc, final_progress, mae?, mae_reached?,
    progress_source, stage_accuracy?}], "summary": {voc_mean, voc_std, voc_success_mean, voc_success_std,
    voc_failure_mean, voc_failure_std, mae, mae_success, mae_failure, mae_failure_reached,
    num_failed_scored, failure_mae_note, stage_accuracy, final_progress_auroc, margin, by_kind,
    num_episodes, num_failed}}. Metrics without data (no targets, no failures) are None. A failed
    episode whose targets are an assumed ramp gets no MAE (see the module docstring); `by_kind` is
    `failure_breakdown` over the episodes' kinds ({} when no kind is known).
    """
    missing = sorted(set(truths) - set(predictions))
    if missing:
        raise RewardkitError(f"no predictions for episode(s) {missing}")
    episodes = []
    for index, truth in sorted(truths.items()):
        outputs = predictions[index]
        progress = np.asarray(outputs["progress"], dtype=np.float64)
        if len(progress) != truth.length:
            raise RewardkitError(f"episode {index}: {len(progress)} predictions for {truth.length} frames")
        row: dict[str, Any] = {
            "episode_index": index,
            "length": truth.length,
            "success": truth.success,
            "kind": truth.kind,
            "voc": value_order_correlation(progress),
            "final_progress": float(progress[-1]),
            "mae": None,
            "mae_reached": None,
            "progress_source": truth.progress_source,
            "stage_accuracy": None,
        }
        scored = truth.success or truth.progress_source != ASSUMED_RAMP
        if truth.progress is not None and scored:
            row["mae"] = mean_absolute_error(progress, truth.progress)
        if truth.progress_reached is not None:
            row["mae_reached"] = mean_absolute_error(progress, truth.progress_reached)
        if truth.stages is not None and "stage_probs" in outputs:
            row["stage_accuracy"] = stage_accuracy(outputs["stage_probs"], truth.stages)
        episodes.append(row)

    def pick(key: str, success: bool | None = None) -> list[float]:
        return [
            e[key] for e in episodes if e[key] is not None and (success is None or e["success"] == success)
        ]

    voc_mean, voc_std = _mean_std(pick("voc"))
    voc_success_mean, voc_success_std = _mean_std(pick("voc", True))
    voc_failure_mean, voc_failure_std = _mean_std(pick("voc", False))
    finals = np.array([e["final_progress"] for e in episodes])
    success = np.array([e["success"] for e in episodes], dtype=bool)
    auroc = roc_auc(finals, success)
    summary = {
        "num_episodes": len(episodes),
        "num_failed": int((~success).sum()),
        "voc_mean": voc_mean,
        "voc_std": voc_std,
        "voc_success_mean": voc_success_mean,
        "voc_success_std": voc_success_std,
        "voc_failure_mean": voc_failure_mean,
        "voc_failure_std": voc_failure_std,
        "mae": _mean_std(pick("mae"))[0],
        "mae_success": _mean_std(pick("mae", True))[0],
        "mae_failure": _mean_std(pick("mae", False))[0],
        "mae_failure_reached": _mean_std(pick("mae_reached", False))[0],
        "num_failed_scored": len(pick("mae", False)),
        "failure_mae_note": None,
        "stage_accuracy": _mean_std(pick("stage_accuracy"))[0],
        "final_progress_auroc": None if np.isnan(auroc) else auroc,
        "margin": success_failure_margin(finals, success),
        "by_kind": failure_breakdown(
            episodes, {e["episode_index"]: e["kind"] for e in episodes if e["kind"] is not None}
        ),
    }
    if summary["num_failed"] and not summary["num_failed_scored"]:
        summary["failure_mae_note"] = NO_FAILURE_PROGRESS_NOTE
    return {"episodes": episodes, "summary": summary}


def evaluate_models(
    predictions_by_model: Mapping[str, Predictions], truths: Mapping[int, EpisodeTruth]
) -> dict[str, dict[str, Any]]:
    """Evaluate several models side by side, with the two baselines always added.

    Returns {model name: evaluate_predictions(...)}, models first, then the baselines.
    """
    everything = {**predictions_by_model, **baseline_predictions(truths)}
    return {name: evaluate_predictions(predictions, truths) for name, predictions in everything.items()}
