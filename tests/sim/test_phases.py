"""The expert-phase ground truth: pure functions of metaworld observations."""

from __future__ import annotations

import numpy as np
import pytest

from rewardkit.commands.sim import parse_list
from rewardkit.sim.metaworld_sim import _stage_spans
from rewardkit.sim.phases import phase_progress, phases_for, reward_progress


def _obs(hand, puck, goal, gripper=1.0) -> np.ndarray:
    obs = np.zeros(39)
    obs[0:3], obs[3], obs[4:7], obs[36:39] = hand, gripper, puck, goal
    return obs


def test_reach_progress_is_the_share_of_distance_covered():
    goal = np.array([0.1, 0.8, 0.2])
    start = np.array([0.1, 0.4, 0.2])
    hands = [start + f * (goal - start) for f in (0.0, 0.25, 0.5, 1.0)]
    stage, progress = phase_progress(
        np.stack([_obs(h, np.zeros(3), goal) for h in hands]), phases_for("reach-v3")
    )
    assert stage.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(progress, [0.0, 0.25, 0.5, 1.0], atol=1e-6)


def test_pick_place_stages_follow_the_expert_and_fall_back_when_the_puck_is_dropped():
    phases = phases_for("pick-place-v3")
    puck, goal = np.array([0.0, 0.6, 0.02]), np.array([0.1, 0.8, 0.25])
    frames = [
        _obs([0.2, 0.4, 0.2], puck, goal),  # far in the plane: reach above
        _obs([0.0, 0.6, 0.2], puck, goal),  # above the puck: lower
        _obs([0.0, 0.6, 0.05], puck, goal, gripper=0.5),  # holding it: move to the goal
        _obs([0.05, 0.7, 0.15], [0.05, 0.7, 0.13], goal, gripper=0.5),  # carried half way
        _obs([0.05, 0.7, 0.15], [0.0, 0.6, 0.02], goal, gripper=1.0),  # dropped: back to reach
    ]
    stage, progress = phase_progress(np.stack(frames), phases)
    assert stage.tolist() == [0, 1, 2, 2, 0]
    assert progress[3] > progress[2] > progress[1] > progress[0]
    assert progress[4] < 1 / 3
    assert ((progress >= 0) & (progress <= 1)).all()


def test_phase_progress_rejects_observations_of_the_wrong_shape():
    with pytest.raises(ValueError, match="39"):
        phase_progress(np.zeros((5, 4)), phases_for("reach-v3"))


def test_reward_progress_scales_metaworld_rewards_into_unit_interval():
    np.testing.assert_allclose(reward_progress(np.array([0.0, 5.0, 10.0, 12.0])), [0.0, 0.5, 1.0, 1.0])


def test_stage_spans_are_contiguous_runs():
    spans = _stage_spans(np.array([0, 0, 1, 1, 1, 2, 0]), ["a", "b", "c"])
    assert spans == [
        {"name": "a", "start": 0, "end": 2},
        {"name": "b", "start": 2, "end": 5},
        {"name": "c", "start": 5, "end": 6},
        {"name": "a", "start": 6, "end": 7},
    ]


def test_parse_list_accepts_one_name_or_a_list():
    assert parse_list("reach-v3") == ["reach-v3"]
    assert parse_list("[push-v3, pick-place-v3]") == ["push-v3", "pick-place-v3"]
