"""Metrics on hand-made curves, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardkit.evaluation import (
    CONSTANT_BASELINE,
    ELAPSED_BASELINE,
    EpisodeTruth,
    evaluate_models,
    evaluate_predictions,
    mean_absolute_error,
    roc_auc,
    spearman,
    stage_accuracy,
    value_order_correlation,
)

PERFECT = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def test_voc_perfect_reversed_constant_noisy():
    assert value_order_correlation(PERFECT) == pytest.approx(1.0)
    # any strictly increasing curve, not only a straight line
    assert value_order_correlation(PERFECT**3) == pytest.approx(1.0)
    assert value_order_correlation(PERFECT[::-1]) == pytest.approx(-1.0)
    # constant: no order information, defined as 0 (Spearman itself is undefined)
    assert value_order_correlation(np.full(5, 0.4)) == 0.0
    # noisy: ranks (2,1,4,3,5) vs (1..5): sum d^2 = 4, rho = 1 - 6*4 / (5*(25-1)) = 0.8
    assert value_order_correlation(np.array([0.1, 0.0, 0.3, 0.2, 0.4])) == pytest.approx(0.8)
    # ties: average ranks (1.5,1.5,3.5,3.5) vs (1,2,3,4): 4 / sqrt(4 * 5) = 0.894427...
    assert value_order_correlation(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(4 / math.sqrt(20))
    assert value_order_correlation(np.array([0.3])) == 0.0


def test_spearman_agrees_with_scipy_on_random_data():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    b[:5] = b[5]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="same length"):
        spearman(a, b[:3])


def test_mae_and_stage_accuracy_by_hand():
    # |0-0| + |0.5-0.25| + |1-0.5| = 0.75 over 3 frames
    assert mean_absolute_error(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.25, 0.5])) == pytest.approx(0.25)
    assert mean_absolute_error(np.full(5, 0.5), PERFECT) == pytest.approx((0.5 + 0.25 + 0 + 0.25 + 0.5) / 5)
    with pytest.raises(ValueError, match="differ in shape"):
        mean_absolute_error(np.zeros(3), np.zeros(4))
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])  # argmax 0, 1, 1, 0
    assert stage_accuracy(probs, np.array([0, 1, 0, 0])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="does not match"):
        stage_accuracy(probs, np.array([0, 1]))


def test_roc_auc_by_hand():
    # positives 0.9, 0.8 vs negatives 0.7, 0.85: 3 of 4 pairs ordered right
    scores = np.array([0.9, 0.8, 0.7, 0.85])
    positive = np.array([True, True, False, False])
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 0.0]), np.array([True, False])) == 1.0
    assert roc_auc(np.array([0.0, 1.0]), np.array([True, False])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5  # a tie counts half
    assert math.isnan(roc_auc(np.array([0.5, 0.6]), np.array([True, True])))


def _truths():
    rising = np.linspace(0, 1, 5).astype(np.float32)
    failed = np.array([0.0, 0.25, 0.5, 0.25, 0.0], dtype=np.float32)
    return {
        0: EpisodeTruth(0, 5, True, rising),
        1: EpisodeTruth(1, 5, True, rising),
        2: EpisodeTruth(2, 5, False, failed),
    }


def test_evaluate_a_model_that_sees_failure_beats_time_on_failures():
    truths = _truths()
    watching = {i: {"progress": t.progress} for i, t in truths.items()}  # follows the true progress
    results = evaluate_models({"watcher": watching}, truths)
    assert list(results) == ["watcher", ELAPSED_BASELINE, CONSTANT_BASELINE]
    model, time_only, constant = (results[k]["summary"] for k in results)
    # pure time is perfect on VOC of successes; so is the model
    assert time_only["voc_success_mean"] == pytest.approx(1.0) and time_only["voc_success_std"] == 0.0
    assert model["voc_success_mean"] == pytest.approx(1.0)
    # the failed episode: model's final 0 < successes' 1 -> AUROC 1; time ends at 1 for all -> 0.5
    assert model["final_progress_auroc"] == 1.0
    assert time_only["final_progress_auroc"] == 0.5 and constant["final_progress_auroc"] == 0.5
    # failure MAE: time |(0,.25,.5,.75,1) - (0,.25,.5,.25,0)| = 1.5 / 5 = 0.3; the model 0
    assert time_only["mae_failure"] == pytest.approx(0.3) and model["mae_failure"] == 0.0
    # constant 0.5 vs the rising target: (0.5+0.25+0+0.25+0.5)/5 = 0.3
    assert constant["mae_success"] == pytest.approx(0.3) and constant["voc_mean"] == 0.0
    assert model["num_episodes"] == 3 and model["num_failed"] == 1
    assert model["stage_accuracy"] is None  # no true stages given


def test_evaluate_stage_accuracy_and_missing_data():
    truths = {0: EpisodeTruth(0, 4, True, None, np.array([0, 0, 1, 1]))}
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    result = evaluate_predictions({0: {"progress": np.linspace(0, 1, 4), "stage_probs": probs}}, truths)
    s = result["summary"]
    assert s["stage_accuracy"] == pytest.approx(0.75)
    assert s["mae"] is None and s["final_progress_auroc"] is None and s["voc_failure_mean"] is None
    with pytest.raises(ValueError, match=r"no predictions for episode\(s\) \[0\]"):
        evaluate_predictions({}, truths)
    with pytest.raises(ValueError, match="episode 0: 3 predictions for 4 frames"):
        evaluate_predictions({0: {"progress": np.zeros(3)}}, truths)


def test_ground_truth_from_the_datasets_annotations(tiny_dataset, tmp_path):
    import shutil

    from rewardkit.data.annotations import SubtaskAnnotation, write_annotations
    from rewardkit.data.dataset import open_dataset
    from rewardkit.data.targets import linear_progress
    from rewardkit.evaluation import ground_truth_from_dataset

    root, truths = tiny_dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    write_annotations(copy, "sparse", {0: SubtaskAnnotation(("reach", "push"), (0, 8), (7, 19))})
    gt = ground_truth_from_dataset(open_dataset(root=copy), failed_episodes=[2])
    assert [gt[i].success for i in range(3)] == [True, True, False]
    np.testing.assert_allclose(gt[1].progress, linear_progress(truths[1].length))
    assert gt[2].progress.max() < 1.0 and gt[2].progress[-1] < 1.0  # a failed attempt never ends at 1
    np.testing.assert_array_equal(gt[0].stages, [0] * 8 + [1] * 12)
    assert gt[1].stages is None
