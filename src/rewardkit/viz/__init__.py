"""Plots (PNG) and videos (mp4) of predicted progress."""

from rewardkit.viz.episodes import plot_progress, progress_plot_paths
from rewardkit.viz.plots import plot_episode, plot_overview, sample_frame_indices, stage_boundaries
from rewardkit.viz.video import compose_frames, side_by_side, write_episode_video

__all__ = [
    "compose_frames",
    "plot_episode",
    "plot_overview",
    "plot_progress",
    "progress_plot_paths",
    "sample_frame_indices",
    "side_by_side",
    "stage_boundaries",
    "write_episode_video",
]
