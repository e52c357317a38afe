"""PNG timelines of subtask annotations: sample frames above each scheme's subtasks over time.

`write_timelines` draws one PNG per annotated episode of a dataset (`rewardkit annotate show`);
`plot_episode_timeline` draws one episode from arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rewardkit.data.annotations import SubtaskAnnotation, read_annotations, read_temporal_proportions
from rewardkit.data.targets import normalized_progress
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write, check_overwrite


def plot_episode_timeline(
    path: str | Path,
    episode_index: int,
    frames: np.ndarray,
    frame_indices: np.ndarray,
    length: int,
    fps: float,
    annotations: Mapping[str, SubtaskAnnotation],
    proportions: Mapping[str, Mapping[str, float]],
) -> Path:
    """Save a PNG: sample frames (N, H, W, 3) taken at `frame_indices` (N,) on top, then each scheme's
    subtasks ({scheme: annotation}) as coloured bars over time, with the normalised progress drawn over
    them when the scheme has temporal proportions ({scheme: {name: proportion}}) naming its subtasks."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns = max(len(frames), 1)
    rows = len(annotations)
    figure = plt.figure(figsize=(max(2.0 * columns, 8.0), 2.2 + 1.4 * rows), constrained_layout=True)
    grid = figure.add_gridspec(1 + rows, columns, height_ratios=[2.0] + [1.2] * rows)
    for column, (frame, index) in enumerate(zip(frames, frame_indices, strict=True)):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(frame)
        axis.set_title(f"t={index / fps:.2f} s", fontsize=8)
        axis.axis("off")
    colours = plt.get_cmap("tab10")
    times = np.arange(length) / fps
    for row, (scheme, annotation) in enumerate(annotations.items()):
        axis = figure.add_subplot(grid[1 + row, :])
        for k, (name, start, end) in enumerate(
            zip(annotation.names, annotation.start_frames, annotation.end_frames, strict=True)
        ):
            left, width = start / fps, max(end - start, 0.5) / fps
            axis.broken_barh([(left, width)], (0, 1), color=colours(k % 10), alpha=0.6)
            axis.text(left + width / 2, 0.5, name, ha="center", va="center", fontsize=7, clip_on=True)
        order = list(proportions.get(scheme, {}))
        if order and all(name in order for name in annotation.names):
            stage, tau = annotation.stage_tau(length, order)
            progress = normalized_progress(stage, tau, [proportions[scheme][n] for n in order])
            axis.plot(times, progress, color="black", linewidth=1.2, label="normalised progress")
            axis.legend(loc="upper left", fontsize=7)
        axis.set_xlim(0, max(times[-1], 1 / fps))
        axis.set_ylim(0, 1.05)
        axis.set_ylabel(scheme)
        axis.set_xlabel("time (s)")
    figure.suptitle(f"episode {episode_index}: {length} frames, {length / fps:.1f} s")
    try:
        return atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=80, format="png"))
    finally:
        plt.close(figure)


def timeline_path(output_dir: str | Path, episode_index: int) -> Path:
    """`<output_dir>/episode_<index:06d>.png`."""
    return Path(output_dir) / f"episode_{episode_index:06d}.png"


def write_timelines(
    dataset,
    output_dir: str | Path,
    schemes: Sequence[str],
    camera: str | None = None,
    num_frames: int = 6,
    overwrite: bool = False,
) -> dict[int, Path]:
    """One timeline PNG per annotated episode of `dataset` (a `RewardDataset`, its chosen episodes):
    {episode_index: path}. Existing PNGs are refused (before any is drawn) unless `overwrite`."""
    if not dataset.camera_keys:
        raise RewardkitError(f"{dataset.root}: no camera to take sample frames from")
    camera = camera or dataset.camera_keys[0]
    dataset.check_camera(camera)
    by_scheme = {s: read_annotations(dataset.root, s, episodes=dataset.episode_indices) for s in schemes}
    proportions = {}
    for scheme in schemes:
        try:
            proportions[scheme] = read_temporal_proportions(dataset.root, scheme)
        except FileNotFoundError:
            pass
    annotated = [
        (episode, {s: by_scheme[s][episode.episode_index] for s in schemes if episode.episode_index in by_scheme[s]})
        for episode in dataset.episodes()
    ]  # fmt: skip
    annotated = [(episode, by_name) for episode, by_name in annotated if by_name]
    for episode, _ in annotated:
        check_overwrite(timeline_path(output_dir, episode.episode_index), overwrite)
    written = {}
    for episode, episode_annotations in annotated:
        frame_indices = np.unique(np.linspace(0, episode.length - 1, max(num_frames, 1)).round().astype(int))
        frames = dataset.read_frames_at(episode.episode_index, camera, frame_indices)
        written[episode.episode_index] = plot_episode_timeline(
            timeline_path(output_dir, episode.episode_index), episode.episode_index, frames, frame_indices,
            episode.length, dataset.fps, episode_annotations, proportions,
        )  # fmt: skip
    return written
