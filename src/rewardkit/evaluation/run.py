"""Evaluate models on held-out episodes of a dataset: label, measure, plot, report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.evaluation.evaluate import EpisodeTruth, evaluate_models
from rewardkit.evaluation.report import write_report

logger = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    """Where the report went and what it says.

    Args:
        json_path: eval.json (every number).
        html_path: report.html (self-contained).
        results: {model name: {"episodes": [...], "summary": {...}}}, baselines included.
        predictions: {model name: {episode_index: outputs}} for the models (not the baselines).
    """

    json_path: Path
    html_path: Path
    results: dict[str, dict[str, Any]]
    predictions: dict[str, dict[int, dict[str, np.ndarray]]]


def _plot_episodes(truths: Mapping[int, EpisodeTruth], count: int) -> list[int]:
    """Which episodes get a per-episode plot: failures first (they tell the most), then successes."""
    ordered = sorted(truths, key=lambda i: (truths[i].success, i))
    return ordered[:count]


def evaluation_output_paths(
    output_dir: str | Path, names: Sequence[str], truths: Mapping[int, EpisodeTruth], episode_plots: int = 3
) -> list[Path]:
    """Every file `evaluate_dataset` writes for models `names`: eval.json, report.html and the plots."""
    from rewardkit.viz import progress_plot_paths

    output_dir = Path(output_dir)
    plots = progress_plot_paths(output_dir / "plots", names, _plot_episodes(truths, episode_plots))
    return [output_dir / "eval.json", output_dir / "report.html", *plots]


def evaluate_dataset(
    models: Mapping[str, Any],
    dataset: Any,
    truths: Mapping[int, EpisodeTruth],
    output_dir: str | Path,
    stride: int = 1,
    episode_plots: int = 3,
    context: Mapping[str, Any] | None = None,
    show_progress: bool = True,
    calibration: Any = None,
) -> EvaluationReport:
    """Label `truths`' episodes with every model, evaluate beside the two baselines, write the report.

    Args:
        models: name -> a rewardkit model (labelled here) or precomputed predictions
            {episode_index: {"progress": (T,), ...}}.
        dataset: the `RewardDataset` holding the episodes (frames for the plots, inputs for the models).
        truths: episode_index -> `EpisodeTruth` (success flag, targets, stages): the episodes evaluated.
        output_dir: where eval.json, report.html and plots/*.png go.
        stride: labelling stride (see `rewardkit label`).
        episode_plots: per-episode plots per model (failed episodes first).
    """
    from rewardkit.labelling import label_dataset
    from rewardkit.viz import plot_progress

    output_dir = Path(output_dir)
    if not truths:
        raise RewardkitError("no episodes to evaluate")
    selected = sorted(truths)
    previous_selection = dataset.selected_episodes
    dataset.selected_episodes = selected
    try:
        predictions: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        for name, model in models.items():
            if hasattr(model, "label_episode"):
                logger.info("labelling %d episodes with %s", len(selected), name)
                labels = label_dataset(model, dataset, stride=stride, show_progress=show_progress)
                predictions[name] = {ep.episode_index: ep.outputs for ep in labels}
            else:
                predictions[name] = {int(k): dict(v) for k, v in model.items()}
        results = evaluate_models(predictions, truths)

        images = plot_progress(
            output_dir / "plots",
            dataset,
            predictions,
            truths,
            _plot_episodes(truths, episode_plots),
            overview_episodes=selected,
        )
    finally:
        dataset.selected_episodes = previous_selection
    info = {
        "dataset": str(getattr(dataset, "root", "")),
        "episodes": ", ".join(str(i) for i in selected),
        "failed episodes": ", ".join(str(i) for i in selected if not truths[i].success) or "none",
        "stride": stride,
        **(context or {}),
    }
    json_path, html_path = write_report(output_dir, results, images, context=info, calibration=calibration)
    return EvaluationReport(json_path, html_path, results, predictions)
