"""Test configuration: offline, tiny datasets built with lerobot's own writer."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub / lerobot: the suite never touches the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

# The suite runs two xdist workers on two cores: one intra-op thread per worker. More threads than free
# cores make torch's thread pool spin far more than it computes on models this small (3 s vs 0.1 s
# per training step was measured on this 2-core machine).
torch.set_num_threads(1)

from rewardkit.data.synthetic import make_synthetic_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """3 episodes, one camera (32x32), one task, state and action. Returns (root, ground truths)."""
    root = tmp_path_factory.mktemp("tiny") / "ds"
    truths = make_synthetic_dataset(root, num_episodes=3, episode_length=[20, 24, 16], image_size=32)
    return root, truths


@pytest.fixture(scope="session")
def two_camera_dataset(tmp_path_factory):
    """4 episodes, two cameras, two tasks, episode 3 failed. Returns (root, ground truths)."""
    root = tmp_path_factory.mktemp("twocam") / "ds"
    truths = make_synthetic_dataset(
        root,
        num_episodes=4,
        episode_length=[18, 22, 20, 24],
        image_size=16,
        cameras=("observation.images.top", "observation.images.wrist"),
        tasks=("push the block to the right", "lift the cube"),
        failed_episodes=(3,),
    )
    return root, truths
