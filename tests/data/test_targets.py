"""Progress targets: hand-computed cases and hypothesis properties (range, monotonicity, no overshoot)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardkit.data.targets import (
    episode_progress,
    failure_progress,
    keyframe_progress,
    linear_progress,
    normalized_progress,
    single_stage_targets,
    stage_tau_from_progress,
    stage_tau_targets,
    temporal_proportions,
)

FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------- linear
def test_linear_progress_margins_hand_computed():
    # 11 frames: fractions 0, .1, ..., 1; margins .1 and .9 -> (f - .1) / .8 clipped
    p = linear_progress(11, start=0.1, end=0.9)
    expected = np.clip((np.arange(11) / 10 - 0.1) / 0.8, 0, 1)
    np.testing.assert_allclose(p, expected, atol=1e-6)
    assert p[0] == 0 and p[-1] == 1 and p.dtype == np.float32


@FAST
@given(st.integers(1, 300))
def test_linear_progress_is_monotone_in_range(length):
    p = linear_progress(length)
    assert p.shape == (length,)
    assert (p >= 0).all() and (p <= 1).all()
    assert (np.diff(p) >= 0).all()


# ---------------------------------------------------------------- keyframes
def test_keyframe_progress_hand_computed_ramp_and_hold():
    p = keyframe_progress(10, {3: 0.5, 6: 1.0})
    np.testing.assert_allclose(p, [0, 1 / 6, 2 / 6, 0.5, 4 / 6, 5 / 6, 1, 1, 1, 1], atol=1e-6)


def test_keyframe_progress_drop_is_a_step():
    p = keyframe_progress(10, [(3, 0.5), (6, 0.2), (8, 0.6)], ramp_from_start=False)
    np.testing.assert_allclose(p, [0, 0, 0, 0.5, 0.5, 0.5, 0.2, 0.4, 0.6, 0.6], atol=1e-6)


def test_keyframe_progress_initial_and_keyframe_at_zero():
    np.testing.assert_allclose(keyframe_progress(4, {2: 1.0}, initial=0.5), [0.5, 0.75, 1, 1])
    np.testing.assert_allclose(keyframe_progress(3, {0: 0.2, 2: 0.4}, initial=0.9), [0.2, 0.3, 0.4])
    np.testing.assert_allclose(keyframe_progress(3, {}), [0, 0, 0])


@pytest.mark.parametrize(
    "keyframes, message",
    [
        ({2: 1.5}, "in \\[0, 1\\]"),
        ({2: float("nan")}, "NaN"),
        ({2: -0.1}, "in \\[0, 1\\]"),
        ({10: 0.5}, "keyframe frames"),
        ([(2, 0.5), (2, 0.6)], "two keyframes"),
        ([(2.5, 0.5)], "whole frame"),
    ],
)
def test_keyframe_progress_rejects_bad_keyframes(keyframes, message):
    with pytest.raises(ValueError, match=message):
        keyframe_progress(10, keyframes)


keyframe_sets = st.integers(2, 80).flatmap(
    lambda length: st.tuples(
        st.just(length),
        st.dictionaries(st.integers(0, length - 1), st.floats(0, 1), max_size=6),
        st.floats(0, 1),
        st.booleans(),
    )
)


@FAST
@given(keyframe_sets)
def test_keyframe_progress_never_overshoots_and_rises_monotonically(case):
    length, keyframes, initial, ramp = case
    p = keyframe_progress(length, keyframes, initial=initial, ramp_from_start=ramp).astype(np.float64)
    assert p.shape == (length,)
    assert (p >= 0).all() and (p <= 1).all()
    for frame, value in keyframes.items():
        assert p[frame] == pytest.approx(value, abs=1e-6)
    anchors = dict(keyframes)
    if ramp or 0 in anchors:
        anchors.setdefault(0, initial)
    frames = sorted(anchors)
    for f0, f1 in zip(frames, frames[1:], strict=False):
        segment = p[f0 : f1 + 1]
        lo, hi = sorted((anchors[f0], anchors[f1]))
        # never above the larger neighbour nor below the smaller one
        assert (segment >= lo - 1e-6).all() and (segment <= hi + 1e-6).all()
        if anchors[f1] >= anchors[f0]:
            assert (np.diff(segment) >= -1e-6).all()
        else:  # a drop is a step at the lower keyframe: held until just before it
            np.testing.assert_allclose(p[f0:f1], anchors[f0], atol=1e-6)
    if frames:
        np.testing.assert_allclose(p[frames[-1] :], anchors[frames[-1]], atol=1e-6)
    if not keyframes:
        np.testing.assert_allclose(p, initial, atol=1e-6)


# ---------------------------------------------------------------- failure
def test_failure_progress_hand_computed():
    base = np.linspace(0, 1, 6)  # 0 .2 .4 .6 .8 1
    np.testing.assert_allclose(failure_progress(6, base, fail_frame=4), [0, 0.2, 0.4, 0.6, 0, 0], atol=1e-6)
    np.testing.assert_allclose(failure_progress(6, base), [0, 0.2, 0.4, 0.6, 0.8, 0.9], atol=1e-6)
    np.testing.assert_allclose(
        failure_progress(6, base, fail_frame=5, drop_to=0.1, max_progress=0.5),
        [0, 0.2, 0.4, 0.5, 0.5, 0.1],
        atol=1e-6,
    )
    # a drop already in the base (a keyframe drop) is kept, only capped
    np.testing.assert_allclose(
        failure_progress(4, np.array([0, 0.95, 0.3, 0.5])), [0, 0.9, 0.3, 0.5], atol=1e-6
    )


@FAST
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(0, 1), min_size=n, max_size=n),
            st.one_of(st.none(), st.integers(0, n - 1)),
            st.floats(0, 0.5),
        )
    )
)
def test_failure_progress_never_ends_at_one(case):
    base, fail_frame, drop_to = case
    p = failure_progress(len(base), np.array(base), fail_frame=fail_frame, drop_to=drop_to)
    assert (p >= 0).all() and (p < 1).all()
    if fail_frame is not None:
        np.testing.assert_allclose(p[fail_frame:], drop_to, atol=1e-6)
        np.testing.assert_allclose(p[:fail_frame], np.minimum(base[:fail_frame], 0.9), atol=1e-6)


def test_failure_progress_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        failure_progress(5, np.zeros(4))
    with pytest.raises(ValueError, match="failure frame must be a frame of the episode"):
        failure_progress(5, np.zeros(5), fail_frame=5)
    with pytest.raises(ValueError, match="failure target must be one of"):
        failure_progress(5, np.zeros(5), fail_frame=2, after="fall")
    with pytest.raises(ValueError, match="max_progress"):
        failure_progress(5, np.zeros(5), max_progress=1.0)


def test_failure_progress_hold_and_drop_hand_computed():
    base = np.linspace(0, 1, 6)  # 0 .2 .4 .6 .8 1
    # hold: the level reached at the failure frame, to the end (a stalled attempt)
    np.testing.assert_allclose(
        failure_progress(6, base, fail_frame=3, after="hold"), [0, 0.2, 0.4, 0.6, 0.6, 0.6], atol=1e-6
    )
    # the level held is capped too: reached 1 at frame 5 of a failed episode -> 0.9
    np.testing.assert_allclose(
        failure_progress(6, base, fail_frame=5, after="hold"), [0, 0.2, 0.4, 0.6, 0.8, 0.9], atol=1e-6
    )
    # frame 0 is a failure from the start: hold keeps the first frame's level, drop gives drop_to
    np.testing.assert_allclose(failure_progress(6, base + 0.1, fail_frame=0, after="hold"), 0.1, atol=1e-6)
    np.testing.assert_allclose(failure_progress(6, base, fail_frame=0, drop_to=0.2), 0.2, atol=1e-6)
    # a keyframe base with a drop before the failure frame: hold keeps the level at the frame
    np.testing.assert_allclose(
        failure_progress(5, np.array([0, 0.5, 0.2, 0.4, 0.7]), fail_frame=2, after="hold"),
        [0, 0.5, 0.2, 0.2, 0.2],
        atol=1e-6,
    )


def test_episode_progress_passes_the_failure_target():
    hold = episode_progress(11, failed=True, fail_frame=5, start=0.0, end=1.0, after="hold")
    np.testing.assert_allclose(hold, [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], atol=1e-6)
    drop = episode_progress(11, failed=True, fail_frame=5, start=0.0, end=1.0)
    np.testing.assert_allclose(drop, [0, 0.1, 0.2, 0.3, 0.4, 0, 0, 0, 0, 0, 0], atol=1e-6)


# ---------------------------------------------------------------- stage + tau
def test_stage_tau_edge_cases_hand_computed():
    # before first (0,1), subtask 0 = [2,5], touching subtask 1 = [5,7], gap none, zero-length 2 at 8,
    # after last (9..11)
    stage, tau = stage_tau_targets(12, [2, 5, 8], [5, 7, 8])
    assert stage.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    np.testing.assert_allclose(tau, [0, 0, 0, 1 / 3, 2 / 3, 1, 0.5, 1, 1, 1, 1, 1], atol=1e-6)


def test_stage_tau_gap_holds_previous_done_and_stage_ids_map():
    stage, tau = stage_tau_targets(10, [0, 6], [3, 9], stage_ids=[1, 3])
    assert stage.tolist() == [1, 1, 1, 1, 1, 1, 3, 3, 3, 3]
    np.testing.assert_allclose(tau, [0, 1 / 3, 2 / 3, 1, 1, 1, 0, 1 / 3, 2 / 3, 1], atol=1e-6)


def test_stage_tau_end_equal_to_length_means_last_frame():
    stage, tau = stage_tau_targets(5, [0], [5])
    np.testing.assert_allclose(tau, [0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize(
    "starts, ends, message",
    [
        ([0, 3], [4, 6], "overlap"),
        ([4, 0], [6, 2], "out of order"),
        ([0], [11], "within the episode"),
        ([3], [2], "ends before"),
    ],
)
def test_stage_tau_rejects_bad_subtasks(starts, ends, message):
    with pytest.raises(ValueError, match=message):
        stage_tau_targets(10, starts, ends)


subtask_layouts = st.integers(2, 60).flatmap(
    lambda length: st.lists(st.integers(0, length), min_size=2, max_size=10).map(
        lambda cuts: (length, sorted(cuts))
    )
)


@FAST
@given(subtask_layouts, st.data())
def test_stage_tau_properties_and_normalized_progress_monotone(layout, data):
    length, cuts = layout
    starts, ends = cuts[0::2][: len(cuts) // 2], cuts[1::2][: len(cuts) // 2]
    stage, tau = stage_tau_targets(length, starts, ends)
    k = len(starts)
    assert stage.shape == tau.shape == (length,)
    assert (tau >= 0).all() and (tau <= 1).all()
    assert ((stage >= 0) & (stage < k)).all()
    assert (np.diff(stage) >= 0).all()
    proportions = data.draw(st.lists(st.floats(0.01, 1), min_size=k, max_size=k))
    progress = normalized_progress(stage, tau, proportions).astype(np.float64)
    assert (progress >= 0).all() and (progress <= 1 + 1e-6).all()
    assert (np.diff(progress) >= -1e-6).all(), "progress from ordered subtasks must never go back"


@FAST
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8).filter(lambda a: sum(a) > 0.01), st.data())
def test_stage_tau_from_progress_inverts_normalized_progress(proportions, data):
    progress = np.array(data.draw(st.lists(st.floats(0, 1), min_size=1, max_size=20)))
    stage, tau = stage_tau_from_progress(progress, proportions)
    alpha = np.asarray(proportions) / np.sum(proportions)
    assert (alpha[stage] > 0).all(), "no frame may land in a stage with zero share"
    np.testing.assert_allclose(normalized_progress(stage, tau, proportions), progress, atol=1e-5)


def test_normalized_progress_hand_computed_and_inverse():
    stage = np.array([0, 0, 1, 2, 2])
    tau = np.array([0.0, 0.5, 0.5, 0.0, 1.0])
    p = normalized_progress(stage, tau, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(p, [0, 0.25, 0.65, 0.8, 1.0], atol=1e-6)
    s, t = stage_tau_from_progress(p, [0.5, 0.3, 0.2])
    assert s.tolist() == [0, 0, 1, 2, 2]
    np.testing.assert_allclose(t, tau, atol=1e-5)
    with pytest.raises(ValueError, match="stage indices"):
        normalized_progress(np.array([3]), np.array([0.0]), [0.5, 0.5])


def test_single_stage_targets_is_linear():
    stage, tau = single_stage_targets(5)
    assert stage.tolist() == [0] * 5
    np.testing.assert_allclose(tau, [0, 0.25, 0.5, 0.75, 1])
    assert single_stage_targets(1)[1].tolist() == [1.0]


# ---------------------------------------------------------------- temporal proportions
def test_temporal_proportions_formula_one_hand_computed():
    episodes = [
        (["reach", "grasp"], [0, 4], [4, 10], 10),  # .4, .6
        (["reach"], [0], [5], 10),  # .5 (episode without grasp)
    ]
    props = temporal_proportions(episodes, ["reach", "grasp"])
    # means: reach (.4+.5)/2 = .45, grasp .6 (only the episode that contains it); normalised by 1.05
    assert list(props) == ["reach", "grasp"]
    assert props["reach"] == pytest.approx(0.45 / 1.05)
    assert props["grasp"] == pytest.approx(0.6 / 1.05)


def test_temporal_proportions_errors():
    with pytest.raises(ValueError, match="no episode contains"):
        temporal_proportions([(["a"], [0], [5], 10)], ["a", "b"])
    with pytest.raises(ValueError, match="'c' is not one of"):
        temporal_proportions([(["c"], [0], [5], 10)], ["a"])


def test_stage_tau_matches_lerobot_find_stage_and_tau_inside_subtasks_and_gaps():
    from lerobot.rewards.sarm.sarm_utils import find_stage_and_tau

    names, starts, ends, length = ["a", "b", "c"], [2, 5, 9], [5, 7, 12], 14
    stage, tau = stage_tau_targets(length, starts, ends)
    for t in range(length):
        if t > ends[-1]:
            continue  # after the last subtask lerobot uses tau 0.999 (documented difference)
        theirs = find_stage_and_tau(t, length, names, starts, ends, names, {n: 1 / 3 for n in names})
        assert (int(stage[t]), float(tau[t])) == pytest.approx(theirs), t


def test_episode_progress_combines_keyframes_linear_and_failure():
    np.testing.assert_allclose(episode_progress(11), linear_progress(11))
    np.testing.assert_allclose(
        episode_progress(10, {3: 0.5, 6: 1.0}), keyframe_progress(10, {3: 0.5, 6: 1.0})
    )
    failed = episode_progress(11, failed=True, fail_frame=8)
    assert failed.max() < 1 and failed[8:].tolist() == [0, 0, 0]
    assert episode_progress(11, failed=True)[-1] == pytest.approx(0.9)
