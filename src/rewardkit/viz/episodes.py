"""The one per-episode plot loop: overview and per-episode plots (and videos) of models' progress on a dataset.

`rewardkit viz` (one model or a progress parquet) and `rewardkit eval` (several models, in its report)
both call `plot_progress`; `progress_plot_paths` says beforehand which files it will write, so a command
can refuse to replace earlier outputs before any work starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.viz.plots import plot_episode, plot_overview, sample_frame_indices
from rewardkit.viz.video import write_episode_video


def file_prefix(name: str) -> str:
    """The file-name prefix of a model's plots: "" for an unnamed model, else "<slug>_"."""
    if not name:
        return ""
    return (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model") + "_"


def progress_plot_paths(
    output_dir: str | Path, names: Sequence[str], episode_indices: Sequence[int], video: bool = False
) -> list[Path]:
    """Every file `plot_progress` writes for models `names` and `episode_indices` (overviews first)."""
    output_dir = Path(output_dir)
    paths = []
    for name in names:
        prefix = file_prefix(name)
        paths.append(output_dir / f"{prefix}overview.png")
        for index in episode_indices:
            paths.append(output_dir / f"{prefix}episode_{index}.png")
            if video:
                paths.append(output_dir / f"{prefix}episode_{index}.mp4")
    return paths


def plot_progress(
    output_dir: str | Path,
    dataset: Any,
    predictions: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]],
    truths: Mapping[int, Any],
    episode_indices: Sequence[int],
    overview_episodes: Sequence[int] | None = None,
    targets: bool = True,
    video: bool = False,
    overview_titles: Mapping[str, str] | None = None,
) -> list[tuple[str, Path]]:
    """Plot each model's progress: an overview of `overview_episodes` and one plot per episode of
    `episode_indices` (file names in `progress_plot_paths`).

    Args:
        output_dir: where the PNGs (and mp4s) go.
        dataset: the `RewardDataset` (frames for the strips and videos, task and fps).
        predictions: model name ("" for a single unnamed model) -> episode_index -> outputs
            {"progress": (T,), optional "progress_dense" (T,), "stage_probs" (T, K)}.
        truths: episode_index -> ground truth with `success`, `progress` (T,), `stages` and `task`
            (an `EpisodeTruth`).
        episode_indices: episodes plotted one by one; each episode's frames are decoded once for all models.
        overview_episodes: episodes in the overview (default: `episode_indices`).
        targets: draw the target progress.
        video: also film each episode (every camera side by side over a live progress graph).
        overview_titles: model name -> overview title (default "<name>: all episodes").

    Returns:
        [(caption, path)] per model: its overview, then its episodes (and videos).

    Raises:
        RewardkitError: a model has no or the wrong number of progress values for an episode; `video`
            on a dataset without cameras.
    """
    output_dir = Path(output_dir)
    overview_episodes = list(episode_indices if overview_episodes is None else overview_episodes)
    for name, per_episode in predictions.items():
        missing = sorted({*overview_episodes, *episode_indices} - set(per_episode))
        if missing:
            raise RewardkitError(f"{name or 'the predictions'}: no progress for episode(s) {missing}")
        for index in {*overview_episodes, *episode_indices}:
            length = dataset.episode(index).length
            if len(per_episode[index]["progress"]) != length:
                raise RewardkitError(
                    f"{name + ': ' if name else ''}episode {index}: {len(per_episode[index]['progress'])} "
                    f"progress values for {length} frames"
                )
    if video and not dataset.camera_keys:
        raise RewardkitError(f"dataset {dataset.root} has no cameras to film")
    camera = dataset.camera_keys[0] if dataset.camera_keys else None
    images: dict[str, list[tuple[str, Path]]] = {name: [] for name in predictions}
    for name, per_episode in predictions.items():
        curves = {i: per_episode[i]["progress"] for i in overview_episodes}
        success = {i: truths[i].success for i in overview_episodes}
        title = (overview_titles or {}).get(name, f"{name}: all episodes")
        path = plot_overview(output_dir / f"{file_prefix(name)}overview.png", curves, success, title=title)
        images[name].append(
            (f"{name or title}: every episode's progress and the final-progress histogram", path)
        )
    for index in episode_indices:
        truth = truths[index]
        cameras = dataset.camera_keys if video else [camera] if camera else []
        frames = {cam: dataset.read_frames(index, cam) for cam in cameras}
        positions = sample_frame_indices(len(frames[camera])) if camera else None
        strip = frames[camera][positions] if camera else None
        outcome = "success" if truth.success else "failure"
        for name, per_episode in predictions.items():
            title = f"{name + ': ' if name else ''}episode {index} ({outcome}): {truth.task}"
            target = truth.progress if targets else None
            stem = f"{file_prefix(name)}episode_{index}"
            path = plot_episode(
                output_dir / f"{stem}.png",
                per_episode[index],
                target=target,
                true_stages=truth.stages,
                frames=strip,
                frame_indices=positions,
                title=title,
            )
            images[name].append((title, path))
            if video:
                film = write_episode_video(
                    output_dir / f"{stem}.mp4",
                    frames,
                    per_episode[index]["progress"],
                    dataset.fps,
                    target,
                    title,
                )
                images[name].append((f"{title} (video)", film))
    return [item for name in predictions for item in images[name]]
