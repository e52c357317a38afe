"""`rewardkit sim`: record a LeRobot dataset from metaworld's scripted experts, with ground truth and failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rewardkit.cli_utils import announce, parse_config
from rewardkit.errors import RewardkitError

HELP = "record a LeRobot dataset from metaworld's scripted experts (successes, failures, ground truth)"
logger = logging.getLogger(__name__)


@dataclass
class SimConfig:
    """Args:
    task: metaworld task(s): `reach-v3`, or a list `[push-v3,pick-place-v3]` to put several in one dataset.
    num_success: successful episodes per task.
    num_failed: failure episodes per task (kinds cycle through `failure_kinds`).
    root: where to write the new dataset (must not exist).
    repo_id: the dataset's repo id, recorded in its metadata (nothing is uploaded).
    image_size: height and width of the rendered frames, in pixels.
    cameras: metaworld camera(s), e.g. `corner` or `[corner,topview]` (key `observation.images.<name>`).
    seed: seed of the episodes' initial object/goal positions and of the failures.
    max_steps: most simulator steps (80 Hz) per episode.
    frame_stride: record one frame every this many simulator steps (fps = 80 / frame_stride).
    failure_kinds: kinds of failure to record: state-visible `action_noise,drop,stall` (`drop` only for
        tasks that carry), vision-only `grasp_air,place_beside` (tasks with an object).
    state: `observation.state` layout: `full` (hand, gripper opening, object and goal positions) or
        `proprio` (hand and gripper command only: for vision-only failures, the state does not show them).
    """

    task: str = "reach-v3"
    num_success: int = 16
    num_failed: int = 8
    root: str = ""
    repo_id: str = "rewardkit/metaworld-sim"
    image_size: int = 96
    cameras: str = "corner"
    seed: int = 0
    max_steps: int = 150
    frame_stride: int = 2
    failure_kinds: str = "[action_noise,drop,stall]"
    state: str = "full"


def parse_list(value: str) -> list[str]:
    """`a`, `a,b` or `[a, b]` -> ["a", "b"] (flag values naming one or several things)."""
    return [part.strip().strip("'\"") for part in value.strip().strip("[]").split(",") if part.strip()]


def main(argv: list[str]) -> int:
    cfg = parse_config(SimConfig, argv, "sim", HELP)
    if not cfg.root:
        raise RewardkitError("--root is required: the folder of the new dataset")
    import importlib.util

    if importlib.util.find_spec("metaworld") is None:
        raise RewardkitError(
            "rewardkit sim needs the sim extra (metaworld, mujoco): pip install 'rewardkit[sim]'"
        )
    from rewardkit.sim.metaworld_sim import episode_summary, record_metaworld_dataset

    episodes = record_metaworld_dataset(
        root=cfg.root,
        tasks=parse_list(cfg.task),
        num_success=cfg.num_success,
        num_failed=cfg.num_failed,
        cameras=parse_list(cfg.cameras),
        image_size=cfg.image_size,
        seed=cfg.seed,
        repo_id=cfg.repo_id,
        max_steps=cfg.max_steps,
        frame_stride=cfg.frame_stride,
        failure_kinds=parse_list(cfg.failure_kinds),
        state=cfg.state,
    )
    for task, counts in episode_summary(episodes).items():
        print(f"{task}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    announce("dataset", cfg.root)
    return 0
