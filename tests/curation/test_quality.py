"""Curation metrics and verdicts on hand-made curves: clean successes, a drop, a stall, a slow outlier and
a failure, each with the verdict and reason it must get."""

from __future__ import annotations

import numpy as np
import pytest

from rewardkit.curation import CurationThresholds, curate, episode_metrics, robust_z, verdict
from rewardkit.errors import RewardkitError

FPS = 10.0


def _ramp(start: float, stop: float, frames: int) -> np.ndarray:
    return np.linspace(start, stop, frames)


def hand_made_curves() -> dict[int, np.ndarray]:
    curves = {e: _ramp(0, 1, n) for e, n in enumerate((45, 48, 50, 52, 55))}  # clean successes, ~5 s
    curves[10] = np.concatenate([_ramp(0, 0.6, 25), _ramp(0.2, 1.0, 35)])  # falls 0.4 after 2.5 s
    curves[11] = np.concatenate([_ramp(0, 0.5, 20), np.full(30, 0.5), _ramp(0.5, 1.0, 20)[1:]])  # 3 s stall
    curves[12] = _ramp(0, 1, 200)  # 20 s: four times slower than its peers
    curves[13] = np.concatenate([_ramp(0, 0.3, 15), np.full(35, 0.3)])  # gives up at 0.3
    return curves


def test_hand_made_curves_get_the_expected_verdicts_and_reasons():
    judged = {q.episode_index: q for q in curate(hand_made_curves(), FPS)}
    for e in range(5):
        assert judged[e].verdict == "keep" and judged[e].reason == "clean", judged[e]
    drop = judged[10]
    assert drop.verdict == "look" and drop.reasons[0].startswith("regression: progress fell 0.40")
    assert drop.metrics.num_regressions == 1 and drop.metrics.deepest_regression == pytest.approx(0.4)
    stall = judged[11]
    assert stall.verdict == "look" and stall.reasons == ("stall: 3.0 s without progress",)
    slow = judged[12]
    assert slow.verdict == "look" and len(slow.reasons) == 1 and slow.reasons[0].startswith("slow: 20.0 s")
    assert slow.outlier_score > 10
    failure = judged[13]
    assert failure.verdict == "drop" and failure.reasons[0] == "failed: final progress 0.30 < 0.5"
    assert any(r.startswith("stall:") for r in failure.reasons[1:])


def test_the_table_is_sorted_worst_first():
    order = [q.episode_index for q in curate(hand_made_curves(), FPS)]
    assert order[0] == 13  # the only drop
    assert set(order[1:4]) == {10, 11, 12} and set(order[4:]) == set(range(5))


def test_metrics_of_a_clean_ramp():
    m = episode_metrics(_ramp(0, 1, 50), FPS, episode_index=7)
    assert m.episode_index == 7 and m.num_frames == 50 and m.duration_s == pytest.approx(5.0)
    assert m.final_progress == pytest.approx(48 / 49)  # median of the last three frames
    assert m.time_to_completion_s == pytest.approx(4.5)  # frame 45 is the first >= 0.9
    assert m.num_regressions == 0 and m.deepest_regression == 0.0
    assert m.longest_stall_s == 0.0 and m.monotonicity == pytest.approx(1.0)


def test_waiting_after_completion_is_not_a_stall_and_nan_frames_are_ignored():
    curve = np.concatenate([_ramp(0, 1, 30), np.full(50, 1.0)])
    curve[3] = np.nan
    m = episode_metrics(curve, FPS)
    assert m.longest_stall_s == 0.0 and m.num_frames == 80 and m.final_progress == 1.0
    with pytest.raises(RewardkitError, match="no finite progress"):
        episode_metrics(np.full(5, np.nan), FPS, episode_index=4)


def test_two_separate_drops_count_twice():
    curve = np.array([0.0, 0.5, 0.3, 0.5, 0.7, 0.45, 0.8, 1.0])
    m = episode_metrics(curve, 1.0, thresholds=CurationThresholds(regression_depth=0.1))
    assert m.num_regressions == 2 and m.deepest_regression == pytest.approx(0.25)


def test_robust_z_matches_the_modified_z_score_and_its_fallback():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, MAD 1
    np.testing.assert_allclose(robust_z(values), (values - 3.0) / 1.4826)
    same = np.array([5.0, 5.0, 5.0, 9.0])  # MAD 0: mean absolute deviation 1 stands in
    np.testing.assert_allclose(robust_z(same), (same - 5.0) / 1.2533)
    assert np.all(robust_z(np.full(4, 2.0)) == 0)


def test_a_fast_outlier_and_an_unfinished_episode_are_looked_at():
    m = episode_metrics(_ramp(0, 0.7, 40), FPS)
    q = verdict(m, outlier_score=-4.0)
    assert q.verdict == "look"
    assert q.reasons[0] == "unfinished: final progress 0.68 < 0.9" and q.reasons[1].startswith("fast: 4.0 s")


def test_bad_thresholds_are_refused():
    with pytest.raises(RewardkitError, match="failure_progress"):
        CurationThresholds(success_progress=0.4, failure_progress=0.5)
    with pytest.raises(RewardkitError, match="no episodes"):
        curate({}, FPS)
