"""Evaluate models' progress predictions on held-out episodes, always beside two baselines.

Ground truth comes in through a simple function API (`EpisodeTruth` per episode: success flag, optional
progress targets (T,), optional true stages (T,)), so a simulator can pass its own ground truth; the CLI
builds it from the dataset with `ground_truth_from_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.evaluation.metrics import (
    constant_progress,
    elapsed_fraction,
    mean_absolute_error,
    roc_auc,
    stage_accuracy,
    value_order_correlation,
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
    """

    episode_index: int
    length: int
    success: bool = True
    progress: np.ndarray | None = None
    stages: np.ndarray | None = None
    task: str = ""


def ground_truth_from_dataset(
    dataset: Any,
    failed_episodes: Sequence[int] = (),
    progress_target: Callable[[int, bool], np.ndarray | None] | None = None,
    keyframes: str | Path | None = None,
    failure_column: str | None = None,
    stage_scheme: str | None = "sparse",
) -> dict[int, EpisodeTruth]:
    """Ground truth for the selected episodes of a `RewardDataset`, from the dataset's own annotations.

    Failures: `failed_episodes`, a per-episode `failure_column` of meta/episodes (true = failed), and the
    keyframes file (`keyframes`: its failed list, or keyframes that drop). Targets:
    `rewardkit.data.annotations.load_progress_targets` (keyframes when given, else linear 5%/95%; failed
    episodes get failure-aware targets that never end at 1), or `progress_target(length, failed) -> (T,)`
    when given. True stages: the `stage_scheme` subtask annotations (LeRobot columns) when present.
    """
    from rewardkit.data import annotations
    from rewardkit.data.targets import stage_tau_targets

    root = Path(dataset.root)
    selected = [ep.episode_index for ep in dataset.episodes()]
    keyframe_data = None
    if keyframes is not None:
        keyframe_data = annotations.read_keyframes(
            keyframes, fps=dataset.fps, lengths={ep.episode_index: ep.length for ep in dataset.episodes()}
        )
    failures = annotations.failed_episodes(
        root, explicit=failed_episodes, column=failure_column, keyframes=keyframe_data
    )
    if progress_target is None:
        targets = annotations.load_progress_targets(
            root, keyframes=keyframe_data, failed=failures, episodes=selected
        )
    stages = annotations.read_annotations(root, stage_scheme, selected) if stage_scheme else {}
    truths = {}
    for ep in dataset.episodes():
        failed = ep.episode_index in failures
        target = progress_target(ep.length, failed) if progress_target else targets[ep.episode_index]
        true_stages = None
        if ep.episode_index in stages:
            subtasks = stages[ep.episode_index]
            true_stages = stage_tau_targets(ep.length, subtasks.start_frames, subtasks.end_frames)[0]
        truths[ep.episode_index] = EpisodeTruth(
            ep.episode_index, ep.length, not failed, target, true_stages, ep.task
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


def evaluate_predictions(predictions: Predictions, truths: Mapping[int, EpisodeTruth]) -> dict[str, Any]:
    """Every metric for one model: per episode, and summarised over episodes.

    Returns {"episodes": [{episode_index, length, success, voc, final_progress, mae?, stage_accuracy?}],
    "summary": {voc_mean, voc_std, voc_success_mean, voc_success_std, voc_failure_mean, voc_failure_std,
    mae, mae_success, mae_failure, stage_accuracy, final_progress_auroc, num_episodes, num_failed}}.
    Metrics without data (no targets, no failures) are None.
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
            "voc": value_order_correlation(progress),
            "final_progress": float(progress[-1]),
            "mae": None,
            "stage_accuracy": None,
        }
        if truth.progress is not None:
            row["mae"] = mean_absolute_error(progress, truth.progress)
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
        "stage_accuracy": _mean_std(pick("stage_accuracy"))[0],
        "final_progress_auroc": None if np.isnan(auroc) else auroc,
    }
    return {"episodes": episodes, "summary": summary}


def evaluate_models(
    predictions_by_model: Mapping[str, Predictions], truths: Mapping[int, EpisodeTruth]
) -> dict[str, dict[str, Any]]:
    """Evaluate several models side by side, with the two baselines always added.

    Returns {model name: evaluate_predictions(...)}, models first, then the baselines.
    """
    everything = {**predictions_by_model, **baseline_predictions(truths)}
    return {name: evaluate_predictions(predictions, truths) for name, predictions in everything.items()}
