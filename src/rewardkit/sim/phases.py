"""Ground truth of a metaworld episode from its scripted expert's phases: pure functions of observations.

The metaworld experts are memoryless state machines: each step they pick a waypoint by testing the
current observation (hand far from the object in the plane -> go above it; above it -> go down; holding
it -> go to the goal). `TaskPhases` re-states those tests for a task, so the stage of a frame is the
phase the expert is in, and it goes back when the world goes back (an object dropped mid-transport puts
the episode back in "reach"). Progress is `(stage + fraction) / num_stages`, the fraction measured as the
distance covered toward the phase's waypoint since the phase was entered.

Observation layout (metaworld v3, 39 values): hand xyz [0:3], gripper opening [3], first object xyz
[4:7], first object quaternion [7:11], second object [11:18], the previous frame's 18 values [18:36],
goal xyz [36:39].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rewardkit.errors import RewardkitError

HAND = slice(0, 3)
GRIPPER = 3
OBJECT = slice(4, 7)
GOAL = slice(36, 39)


@dataclass(frozen=True)
class TaskPhases:
    """The expert's phases of one task.

    stage_names: one name per phase, in order (the SARM sparse stages).
    phase: obs (39,) -> phase index, the expert's own branch test.
    waypoint: (obs, phase) -> (3,) the point the phase moves toward, and which of hand or object moves.
    carry_stage: the phase in which an object is held (where a "drop" failure can happen), or None.
    """

    stage_names: tuple[str, ...]
    phase: Callable[[np.ndarray], int]
    waypoint: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
    carry_stage: int | None = None


def _xy_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:2] - b[:2]))


def _reach_phase(obs: np.ndarray) -> int:
    return 0


def _reach_waypoint(obs: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    return obs[HAND], obs[GOAL]


def _push_phase(obs: np.ndarray) -> int:
    hand, puck = obs[HAND], obs[OBJECT] + np.array([-0.005, 0.0, 0.0])
    if _xy_distance(hand, puck) > 0.02:
        return 0
    if abs(hand[2] - puck[2]) > 0.04:
        return 1
    return 2


def _push_waypoint(obs: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    hand, puck = obs[HAND], obs[OBJECT]
    if phase == 0:
        return hand[:2], puck[:2]
    if phase == 1:
        return hand[2:3], puck[2:3] + 0.03
    return puck, obs[GOAL]


def _pick_place_phase(obs: np.ndarray) -> int:
    hand, puck = obs[HAND], obs[OBJECT] + np.array([-0.005, 0.0, 0.0])
    if _xy_distance(hand, puck) > 0.02:
        return 0
    if (abs(hand[2] - puck[2]) > 0.05 and puck[2] < 0.04) or obs[GRIPPER] > 0.73:
        return 1
    return 2


def _pick_place_waypoint(obs: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    hand, puck = obs[HAND], obs[OBJECT]
    if phase == 0:
        return hand[:2], puck[:2]
    if phase == 1:
        return np.array([hand[2], obs[GRIPPER]]), np.array([puck[2] + 0.03, 0.6])
    return puck, obs[GOAL]


# push and pick-place share one stage schema (their experts have the same three phases; pick-place grasps
# while lowering), so one SARM stage head serves a dataset holding both; the task text tells them apart.
PUCK_STAGES = ("reach above the puck", "lower onto the puck", "move the puck to the goal")

TASK_PHASES: dict[str, TaskPhases] = {
    "reach-v3": TaskPhases(("reach the goal",), _reach_phase, _reach_waypoint),
    "push-v3": TaskPhases(
        PUCK_STAGES,
        _push_phase,
        _push_waypoint,
    ),
    "pick-place-v3": TaskPhases(
        PUCK_STAGES,
        _pick_place_phase,
        _pick_place_waypoint,
        carry_stage=2,
    ),
}


def phases_for(task: str) -> TaskPhases | None:
    """The expert's phases of a metaworld task, or None when the task has no phase table here."""
    return TASK_PHASES.get(task)


def phase_progress(observations: np.ndarray, phases: TaskPhases) -> tuple[np.ndarray, np.ndarray]:
    """Stage and continuous progress of each frame of an episode.

    observations: (T, 39) metaworld observations. Returns (stage (T,) int64, progress (T,) float32 in
    [0, 1]). Within a stage the fraction is the share of the distance to the phase's waypoint covered
    since the stage was entered (0 on entry, 1 at the waypoint).
    """
    observations = np.asarray(observations, dtype=np.float64)
    if observations.ndim != 2 or observations.shape[1] < 39:
        raise RewardkitError(f"expected metaworld observations (T, 39), got {observations.shape}")
    num_stages = len(phases.stage_names)
    stage = np.array([phases.phase(o) for o in observations], dtype=np.int64)
    progress = np.zeros(len(observations), dtype=np.float32)
    entry_distance = 0.0
    for t, obs in enumerate(observations):
        mover, target = phases.waypoint(obs, int(stage[t]))
        distance = float(np.linalg.norm(target - mover))
        if t == 0 or stage[t] != stage[t - 1]:
            entry_distance = max(distance, 1e-6)
        fraction = float(np.clip(1.0 - distance / entry_distance, 0.0, 1.0))
        progress[t] = (stage[t] + fraction) / num_stages
    return stage, progress


def progress_reached(progress: np.ndarray) -> np.ndarray:
    """The progress reached so far: the running maximum of a (T,) progress curve, (T,) float32.

    The current progress (`phase_progress`) falls back when the world goes back (a dropped object); this
    reading keeps the furthest point the attempt got to, so it plateaus where the attempt stopped.
    """
    progress = np.asarray(progress, dtype=np.float32)
    return np.maximum.accumulate(progress) if len(progress) else progress


def reward_progress(rewards: np.ndarray) -> np.ndarray:
    """Fallback progress for a task without a phase table: metaworld's dense reward scaled to [0, 1].

    rewards: (T,) the env's rewards (metaworld v3 rewards lie in [0, 10]). Returns (T,) float32.
    """
    return np.clip(np.asarray(rewards, dtype=np.float32) / 10.0, 0.0, 1.0)
