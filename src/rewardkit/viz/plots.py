"""PNG plots of predicted progress (matplotlib, Agg backend: no display needed).

- `plot_episode`: one episode: predicted progress (and dense progress, and the targets when known),
  stacked stage probabilities with the true stage boundaries, a strip of frames captioned with progress
  and stage.
- `plot_overview`: a dataset: every episode's curve over normalised time, and the histogram of final
  progress split by success / failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.io_utils import atomic_write

SUCCESS_COLOUR = "#2E86AB"
FAILURE_COLOUR = "#D1495B"
TARGET_COLOUR = "#28A745"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = 80) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file, then rename) and close it."""
    plt = _pyplot()
    try:
        return atomic_write(
            path, lambda temporary: figure.savefig(temporary, dpi=dpi, bbox_inches="tight", format="png")
        )
    finally:
        plt.close(figure)
    return path


def stage_boundaries(stages: np.ndarray) -> np.ndarray:
    """Frame indices where the true stage (T,) changes: the first frame of each new stage."""
    stages = np.asarray(stages)
    return np.flatnonzero(np.diff(stages) != 0) + 1


def plot_episode(
    path: str | Path,
    outputs: Mapping[str, np.ndarray],
    target: np.ndarray | None = None,
    true_stages: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    frame_indices: Sequence[int] | None = None,
    title: str = "",
    stage_names: Sequence[str] | None = None,
) -> Path:
    """Plot one episode's predictions to a PNG at `path`.

    Args:
        outputs: the model's outputs: "progress" (T,), optionally "progress_dense" (T,), "stage_probs" (T, K).
        target: (T,) target progress, drawn dashed when known.
        true_stages: (T,) int true stage per frame; its boundaries are drawn over the stage probabilities.
        frames: (N, H, W, 3) uint8 frames for the strip, taken at `frame_indices` (N,).
        title: the figure title (e.g. task and episode).
        stage_names: K names for the legend (default "stage 1".."stage K").
    """
    plt = _pyplot()
    progress = np.asarray(outputs["progress"])
    length = len(progress)
    time = np.arange(length)
    stage_probs = outputs.get("stage_probs")
    rows = [("progress", 2.0)]
    if stage_probs is not None:
        rows.append(("stages", 1.0))
    if frames is not None and len(frames):
        rows.append(("frames", 1.2))
    figure, axes = plt.subplots(
        len(rows),
        1,
        figsize=(10, 2.2 * sum(r for _, r in rows)),
        height_ratios=[r for _, r in rows],
        squeeze=False,
    )
    axes = {name: ax for (name, _), ax in zip(rows, axes[:, 0], strict=True)}

    ax = axes["progress"]
    ax.plot(time, progress, color=SUCCESS_COLOUR, linewidth=2, label="predicted progress")
    ax.fill_between(time, 0, progress, color=SUCCESS_COLOUR, alpha=0.2)
    if "progress_dense" in outputs:
        ax.plot(
            time, outputs["progress_dense"], color="#F18F01", linewidth=1.5, label="predicted (dense head)"
        )
    if target is not None:
        ax.plot(time, target, color=TARGET_COLOUR, linestyle="--", linewidth=2, label="target")
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlim(0, max(length - 1, 1))
    ax.set_ylabel("progress")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)

    if stage_probs is not None:
        ax = axes["stages"]
        stage_probs = np.asarray(stage_probs)
        k = stage_probs.shape[1]
        names = list(stage_names) if stage_names else [f"stage {i + 1}" for i in range(k)]
        colours = plt.cm.tab10(np.arange(k) % 10)
        ax.stackplot(time, *stage_probs.T, colors=colours, alpha=0.85, labels=names)
        if true_stages is not None:
            for i, boundary in enumerate(stage_boundaries(true_stages)):
                ax.axvline(
                    boundary, color="black", linewidth=1.5, label="true stage boundary" if i == 0 else None
                )
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(length - 1, 1))
        ax.set_ylabel("stage probability")
        ax.set_xlabel("frame")
        ax.legend(loc="upper left", fontsize=7, ncol=min(k + 1, 6))

    if "frames" in axes:
        ax = axes["frames"]
        ax.axis("off")
        frames = np.asarray(frames)
        indices = list(frame_indices) if frame_indices is not None else list(range(len(frames)))
        height, width = frames.shape[1:3]
        strip = np.concatenate(list(frames), axis=1)
        ax.imshow(strip, interpolation="nearest")
        for i, frame in enumerate(indices):
            caption = f"frame {frame}\nprogress {progress[frame]:.2f}"
            if stage_probs is not None:
                caption += f"\nstage {int(np.argmax(stage_probs[frame])) + 1}"
            ax.text(i * width + width / 2, height + 2, caption, ha="center", va="top", fontsize=7)
    return save_figure(figure, path)


def sample_frame_indices(length: int, count: int = 6) -> np.ndarray:
    """`count` frame indices spread evenly from the first to the last frame. Returns (min(count, T),) int."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(int))


def plot_overview(
    path: str | Path,
    curves: Mapping[int, np.ndarray],
    success: Mapping[int, bool] | None = None,
    title: str = "",
) -> Path:
    """Plot a dataset overview to a PNG at `path`.

    Args:
        curves: episode_index -> (T,) predicted progress.
        success: episode_index -> success flag (default: all successful).
        title: the figure title.
    """
    plt = _pyplot()
    success = success or {}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[2, 1])
    finals = {True: [], False: []}
    for index, progress in curves.items():
        ok = bool(success.get(index, True))
        progress = np.asarray(progress)
        time = np.linspace(0, 1, len(progress))
        left.plot(time, progress, color=SUCCESS_COLOUR if ok else FAILURE_COLOUR, alpha=0.6, linewidth=1)
        finals[ok].append(float(progress[-1]))
    left.plot([], [], color=SUCCESS_COLOUR, label=f"success ({len(finals[True])})")
    if finals[False]:
        left.plot([], [], color=FAILURE_COLOUR, label=f"failure ({len(finals[False])})")
    left.set_xlabel("fraction of episode")
    left.set_ylabel("predicted progress")
    left.set_ylim(-0.05, 1.08)
    left.grid(alpha=0.3)
    left.legend(loc="upper left", fontsize=8)
    left.set_title(title or f"{len(curves)} episodes")
    bins = np.linspace(0, 1, 21)
    right.hist(finals[True], bins=bins, color=SUCCESS_COLOUR, alpha=0.7, label="success")
    if finals[False]:
        right.hist(finals[False], bins=bins, color=FAILURE_COLOUR, alpha=0.7, label="failure")
    right.set_xlabel("final progress")
    right.set_ylabel("episodes")
    right.legend(fontsize=8)
    right.set_title("final progress")
    return save_figure(figure, path)
