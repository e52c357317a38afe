"""An mp4 per episode: the camera views side by side, a live reward graph under them.

The graph is drawn once with matplotlib (the whole curve, and the same axes without it); each video frame
shows the curve up to the current frame (columns of the full drawing left of the cursor, of the empty
axes right of it) and a cursor line. Encoded with PyAV (h264, yuv420p) at the dataset's fps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write
from rewardkit.viz.plots import SUCCESS_COLOUR, TARGET_COLOUR, _pyplot

MIN_VIEW_HEIGHT = 192  # small dataset images are scaled up (nearest) to at least this height


def _scale_to_height(frames: np.ndarray, height: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, height, W', 3) with nearest-neighbour sampling (keeps the aspect ratio)."""
    t, h, w, _ = frames.shape
    new_w = max(1, round(w * height / h))
    rows = np.minimum((np.arange(height) * h / height).astype(int), h - 1)
    cols = np.minimum((np.arange(new_w) * w / new_w).astype(int), w - 1)
    return frames[:, rows][:, :, cols]


def side_by_side(frames_by_camera: Mapping[str, np.ndarray]) -> np.ndarray:
    """Camera views (each (T, H, W, 3) uint8) side by side at a common height: (T, H', sum W', 3)."""
    views = list(frames_by_camera.values())
    if not views:
        raise RewardkitError("no camera frames to show")
    lengths = {len(v) for v in views}
    if len(lengths) != 1:
        raise RewardkitError(f"cameras have different frame counts: {sorted(lengths)}")
    height = max(MIN_VIEW_HEIGHT, max(v.shape[1] for v in views))
    return np.concatenate([_scale_to_height(v, height) for v in views], axis=2)


def _render_graph(
    progress: np.ndarray, target: np.ndarray | None, width: int, height: int, title: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the full graph and the empty axes once. Returns (full (H, W, 3), empty (H, W, 3), x pixel of
    each frame (T,))."""
    plt = _pyplot()
    length = len(progress)
    dpi = 100
    images = []
    for draw_curve in (True, False):
        figure = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        ax = figure.add_axes((0.1, 0.2, 0.87, 0.68))
        ax.set_xlim(0, max(length - 1, 1))
        ax.set_ylim(-0.05, 1.08)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_ylabel("progress", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        if target is not None:
            ax.plot(np.arange(length), target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
        if draw_curve:
            ax.plot(np.arange(length), progress, color=SUCCESS_COLOUR, linewidth=2)
        figure.canvas.draw()
        image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
        if draw_curve:
            x_pixels = ax.transData.transform(np.stack([np.arange(length), np.zeros(length)], 1))[:, 0]
        plt.close(figure)
        images.append(image)
    return images[0], images[1], np.clip(np.round(x_pixels).astype(int), 0, images[0].shape[1] - 1)


def compose_frames(
    frames_by_camera: Mapping[str, np.ndarray],
    progress: np.ndarray,
    target: np.ndarray | None = None,
    title: str = "",
):
    """Yield the video's frames: views on top, the graph revealed up to frame t below. Each (H, W, 3) uint8
    with even H and W (h264's yuv420p needs them)."""
    views = side_by_side(frames_by_camera)
    length, view_h, view_w, _ = views.shape
    progress = np.asarray(progress, dtype=np.float32)
    if len(progress) != length:
        raise RewardkitError(f"{len(progress)} progress values for {length} frames")
    width = max(view_w, 480)
    width += width % 2
    graph_h = 200
    full, empty, x_pixels = _render_graph(progress, target, width, graph_h, title)
    graph_h, graph_w = full.shape[:2]
    height = view_h + graph_h
    height += height % 2
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    left = (width - view_w) // 2
    from PIL import Image, ImageDraw

    for t in range(length):
        canvas[:view_h, left : left + view_w] = views[t]
        cursor = x_pixels[t]
        graph = empty.copy()
        graph[:, : cursor + 1] = full[:, : cursor + 1]
        graph[:, max(cursor - 1, 0) : cursor + 1] = (90, 90, 90)
        canvas[view_h : view_h + graph_h, :graph_w] = graph[:, :width]
        image = Image.fromarray(canvas)
        ImageDraw.Draw(image).text((6, view_h + 4), f"frame {t}  progress {progress[t]:.2f}", fill=(0, 0, 0))
        yield np.asarray(image)


def write_episode_video(
    path: str | Path,
    frames_by_camera: Mapping[str, np.ndarray],
    progress: np.ndarray,
    fps: int,
    target: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Write an mp4 (h264) at `path`, atomically: camera views side by side over a live progress graph.

    Args:
        frames_by_camera: camera -> (T, H, W, 3) uint8 frames.
        progress: (T,) predicted progress.
        fps: frames per second (the dataset's).
        target: (T,) target progress, drawn dashed when known.
    """
    import av

    def encode(temporary: Path) -> None:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = None
            for image in compose_frames(frames_by_camera, progress, target, title):
                if stream is None:
                    stream = container.add_stream("h264", rate=int(fps))
                    stream.height, stream.width = image.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "23"}
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)

    return atomic_write(path, encode)
