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


def test_progress_reached_is_the_running_maximum_and_plateaus():
    from rewardkit.sim.phases import progress_reached

    current = np.array([0.0, 0.2, 0.5, 0.3, 0.1, 0.4, 0.6], dtype=np.float32)
    np.testing.assert_allclose(progress_reached(current), [0.0, 0.2, 0.5, 0.5, 0.5, 0.5, 0.6])
    assert progress_reached(np.zeros(0)).shape == (0,)


def _grasp_air_frames(puck, beside, goal):
    """Hand-made grasp_air: the hand goes above a point beside the puck, lowers, closes, carries on."""
    start = np.array([0.0, 0.4, 0.2])
    above = beside + np.array([0.0, 0.0, 0.1])
    hands = [start + f * (above - start) for f in (0.0, 0.5, 1.0)]
    hands += [beside + np.array([0.0, 0.0, 0.03])] * 2  # lowered beside the puck, gripper closing
    hands += [beside + f * (goal - beside) for f in (0.3, 0.6, 1.0)]  # carrying nothing to the goal
    grippers = [1.0] * 3 + [1.0, 0.2] + [0.2] * 3
    return np.stack([_obs(h, puck, goal, g) for h, g in zip(hands, grippers, strict=True)])


def test_grasp_air_never_leaves_reach_and_its_reached_progress_plateaus_at_the_closest_approach():
    from rewardkit.sim.phases import progress_reached

    phases = phases_for("pick-place-v3")
    puck, goal = np.array([0.0, 0.6, 0.02]), np.array([0.1, 0.8, 0.25])
    beside = puck + np.array([0.08, 0.0, 0.0])
    observations = _grasp_air_frames(puck, beside, goal)
    stage, progress = phase_progress(observations, phases)
    reached = progress_reached(progress)
    # The stage predicate (hand within 2 cm of the puck in the plane) never holds: stage 0 throughout.
    assert (stage == 0).all()
    # Current progress rises while the hand nears the puck, then falls as it carries air to the goal.
    closest = int(np.argmax(progress))
    assert 0 < progress[closest] < 1 / 3
    assert progress[-1] < progress[closest]
    # The reached reading is flat from the closest approach on.
    np.testing.assert_allclose(reached[closest:], progress[closest])


def test_place_beside_reaches_the_transport_stage_and_plateaus_below_success():
    from rewardkit.sim.phases import progress_reached

    phases = phases_for("pick-place-v3")
    puck, goal = np.array([0.0, 0.6, 0.02]), np.array([0.2, 0.8, 0.2])
    beside = goal + np.array([0.0, -0.12, 0.0])
    frames = [
        _obs([0.2, 0.4, 0.2], puck, goal),
        _obs([0.0, 0.6, 0.12], puck, goal),
        _obs([0.0, 0.6, 0.05], puck, goal, gripper=0.5),  # grasped: the transport stage begins
    ]
    for f in (0.5, 1.0, 1.0, 1.0):  # carried to a point beside the goal, and held there
        at = puck + f * (beside - puck)
        frames.append(_obs(at + [0.0, 0.0, 0.02], at, goal, gripper=0.5))
    stage, progress = phase_progress(np.stack(frames), phases)
    reached = progress_reached(progress)
    assert stage[2:].tolist() == [2] * 5
    # In the last stage, but its waypoint (the goal) is 12 cm away: progress plateaus between 2/3 and 1.
    assert 2 / 3 < progress[-1] < 0.95
    np.testing.assert_allclose(progress[-3:], progress[-1])
    np.testing.assert_allclose(reached[-3:], reached[-1])
    assert reached[-1] == pytest.approx(progress.max())


def test_false_belief_shows_the_object_beside_until_grasped_then_moves_it_with_the_hand():
    from rewardkit.sim.metaworld_sim import _FalseBelief

    phases = phases_for("pick-place-v3")
    belief = _FalseBelief("grasp_air", phases, np.random.default_rng(0))
    puck, goal = np.array([0.0, 0.6, 0.02]), np.array([0.1, 0.8, 0.25])
    far = belief(_obs([0.2, 0.4, 0.2], puck, goal))
    np.testing.assert_allclose(far[4:7], puck + belief.offset)
    assert 0.07 <= np.linalg.norm(belief.offset) <= 0.10 and belief.held is None
    beside = puck + belief.offset
    belief(_obs(beside + [0.005, 0.0, 0.03], puck, goal, gripper=0.5))  # closed on air: "grasped"
    assert belief.held is not None
    carried = belief(_obs([0.1, 0.7, 0.2], puck, goal, gripper=0.5))
    np.testing.assert_allclose(carried[4:7], np.array([0.1, 0.7, 0.2]) + belief.held)
    np.testing.assert_allclose(carried[36:39], goal)  # the goal is shown where it is

    place = _FalseBelief("place_beside", phases, np.random.default_rng(1))
    shown = place(_obs([0.2, 0.4, 0.2], puck, goal))
    np.testing.assert_allclose(shown[36:39], goal + place.offset)
    np.testing.assert_allclose(shown[4:7], puck)


def test_proprio_state_leaves_out_the_object_and_the_goal():
    from rewardkit.sim.metaworld_sim import STATE_NAMES, _Rollout, _state

    puck, goal = np.array([0.0, 0.6, 0.02]), np.array([0.1, 0.8, 0.25])
    observations = np.stack([_obs([0.2, 0.4, 0.2], puck, goal, 0.7), _obs([0.1, 0.5, 0.1], puck, goal, 0.3)])
    rollout = _Rollout(
        observations, np.zeros((2, 4)), np.zeros(2), np.zeros(2, bool), {}, np.array([0.0, 1.0])
    )
    full, proprio = _state(rollout, "full"), _state(rollout, "proprio")
    assert full.shape == (2, len(STATE_NAMES["full"])) and proprio.shape == (2, len(STATE_NAMES["proprio"]))
    np.testing.assert_allclose(full[:, 4:7], [puck, puck])
    np.testing.assert_allclose(proprio, [[0.2, 0.4, 0.2, 0.0], [0.1, 0.5, 0.1, 1.0]], atol=1e-6)


def test_vision_only_kinds_need_an_object_and_drop_a_carry_phase():
    from rewardkit.sim.metaworld_sim import applicable_kinds

    assert applicable_kinds(phases_for("reach-v3")) == ["action_noise", "stall"]
    assert applicable_kinds(phases_for("push-v3")) == ["action_noise", "stall", "grasp_air", "place_beside"]
    assert "drop" in applicable_kinds(phases_for("pick-place-v3"))
