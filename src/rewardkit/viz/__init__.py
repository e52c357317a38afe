"""Plots (PNG) and videos (mp4) of predicted progress."""

from rewardkit.viz.plots import plot_episode, plot_overview, sample_frame_indices, stage_boundaries
from rewardkit.viz.video import compose_frames, side_by_side, write_episode_video

__all__ = [
    "compose_frames",
    "plot_episode",
    "plot_overview",
    "sample_frame_indices",
    "side_by_side",
    "stage_boundaries",
    "write_episode_video",
]
