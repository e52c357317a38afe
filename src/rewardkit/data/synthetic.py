"""Tiny synthetic LeRobot datasets, written with lerobot's own writer, offline, in seconds.

Used by the test fixtures and the benchmarks. Each episode shows a coloured square moving across the
image as the task progresses; the state carries the same progress (plus noise), so a reward model can
learn it from either. A `failed` episode stops part way and falls back: its progress never reaches 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardkit.errors import RewardkitError


@dataclass(frozen=True)
class SyntheticEpisode:
    """What a synthetic episode was made of (its ground truth)."""

    episode_index: int
    length: int
    task: str
    failed: bool
    progress: np.ndarray  # (T,) true progress in [0, 1]


def _progress_curve(length: int, failed: bool, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0.0, 1.0, length)
    if not failed:
        return t
    peak = rng.uniform(0.4, 0.7)
    drop_at = int(length * rng.uniform(0.55, 0.8))
    curve = np.minimum(t, peak)
    curve[drop_at:] = np.linspace(curve[drop_at], 0.1, length - drop_at)
    return curve


def _render(progress: float, size: int, task_id: int, camera_id: int) -> np.ndarray:
    image = np.full((size, size, 3), 30 + 40 * camera_id, dtype=np.uint8)
    square = max(2, size // 6)
    x = int(progress * (size - square))
    y = size // 2 - square // 2 + (camera_id * square) % max(1, size // 2 - square)
    colour = np.array([[220, 60, 60], [60, 200, 80], [70, 90, 230]][task_id % 3], dtype=np.uint8)
    image[y : y + square, x : x + square] = colour
    return image


def make_synthetic_dataset(
    root: str | Path,
    repo_id: str = "rewardkit/synthetic",
    num_episodes: int = 4,
    episode_length: int | Sequence[int] = 24,
    fps: int = 10,
    image_size: int = 32,
    cameras: Sequence[str] = ("observation.images.top",),
    tasks: Sequence[str] = ("push the block to the right",),
    failed_episodes: Sequence[int] = (),
    state_dim: int = 4,
    action_dim: int = 3,
    seed: int = 0,
    vcodec: str = "h264",
) -> list[SyntheticEpisode]:
    """Write a small LeRobot v3.0 video dataset at `root` and return each episode's ground truth.

    Episode `i` has task `tasks[i % len(tasks)]`. `root` must not exist yet (lerobot's writer creates it).
    `vcodec` defaults to h264: lerobot's default (SVT-AV1) crashes on frames this small; pass
    "libsvtav1" with `image_size >= 64` to write what lerobot writes by default.
    """
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rng = np.random.default_rng(seed)
    lengths = (
        [int(episode_length)] * num_episodes
        if isinstance(episode_length, int)
        else [int(x) for x in episode_length]
    )
    if len(lengths) != num_episodes:
        raise RewardkitError(f"episode_length has {len(lengths)} entries for {num_episodes} episodes")
    features = {
        "observation.state": {
            "dtype": "float32",
            "shape": (state_dim,),
            "names": [f"joint_{i}" for i in range(state_dim)],
        },
        "action": {
            "dtype": "float32",
            "shape": (action_dim,),
            "names": [f"motor_{i}" for i in range(action_dim)],
        },
    }
    for cam in cameras:
        features[cam] = {
            "dtype": "video",
            "shape": (image_size, image_size, 3),
            "names": ["height", "width", "channels"],
        }
    encoder = RGBEncoderConfig(vcodec=vcodec, g=2, crf=18 if vcodec == "h264" else 30)
    dataset = LeRobotDataset.create(
        repo_id=repo_id, fps=fps, features=features, root=root, use_videos=True, rgb_encoder=encoder
    )
    truths = []
    failed_set = set(int(i) for i in failed_episodes)
    for ep in range(num_episodes):
        task_id = ep % len(tasks)
        failed = ep in failed_set
        progress = _progress_curve(lengths[ep], failed, rng)
        for t in range(lengths[ep]):
            p = float(progress[t])
            state = np.concatenate([[p], rng.normal(0, 0.05, state_dim - 1)]).astype(np.float32)
            state[0] += rng.normal(0, 0.02)
            action = np.concatenate([[p + 0.05], rng.normal(0, 0.1, action_dim - 1)]).astype(np.float32)
            frame = {"observation.state": state, "action": action, "task": tasks[task_id]}
            for cam_id, cam in enumerate(cameras):
                frame[cam] = _render(p, image_size, task_id, cam_id)
            dataset.add_frame(frame)
        dataset.save_episode()
        truths.append(SyntheticEpisode(ep, lengths[ep], tasks[task_id], failed, progress.astype(np.float32)))
    dataset.finalize()
    return truths
