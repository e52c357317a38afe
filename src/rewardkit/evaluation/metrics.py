"""Quality metrics of predicted progress: small functions, arrays in, numbers out.

- VOC (value-order correlation): Spearman's rank correlation between an episode's predicted progress and
  its frame order. 1 for any strictly increasing curve, -1 for a reversed one. A constant curve carries
  no order: its VOC is defined here as 0 (Spearman is undefined for it).
- MAE: mean absolute error against the progress targets.
- Stage accuracy: fraction of frames whose most probable stage is the true stage.
- ROC AUC: probability that a random successful episode scores above a random failed one (ties count
  half), i.e. the Mann-Whitney U statistic over n_pos * n_neg.

Note: a predictor of pure time (progress = elapsed fraction) scores VOC 1 on every episode, so VOC alone
does not show that a model watches the task; failure AUROC and failure MAE do.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from rewardkit.errors import RewardkitError


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two (T,) arrays (average ranks for ties). 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise RewardkitError(f"spearman needs arrays of the same length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return 0.0
    ra = rankdata(a) - (len(a) + 1) / 2
    rb = rankdata(b) - (len(b) + 1) / 2
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    if denominator == 0:
        return 0.0
    return float((ra * rb).sum() / denominator)


def value_order_correlation(progress: np.ndarray) -> float:
    """VOC of one episode: Spearman between predicted progress (T,) and frame order 0..T-1."""
    progress = np.asarray(progress)
    return spearman(progress, np.arange(len(progress)))


def mean_absolute_error(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean |predicted - target| over frames; both (T,)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape:
        raise RewardkitError(f"predicted {predicted.shape} and target {target.shape} differ in shape")
    return float(np.abs(predicted - target).mean())


def stage_accuracy(stage_probs: np.ndarray, true_stages: np.ndarray) -> float:
    """Fraction of frames where argmax of stage_probs (T, K) equals the true stage (T,) int."""
    stage_probs = np.asarray(stage_probs)
    true_stages = np.asarray(true_stages)
    if stage_probs.ndim != 2 or stage_probs.shape[0] != true_stages.shape[0]:
        raise RewardkitError(
            f"stage_probs {stage_probs.shape} does not match true stages {true_stages.shape}"
        )
    return float((stage_probs.argmax(axis=1) == true_stages).mean())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` (N,) separating `positive` (N,) bool from the rest.

    Ties count half (Mann-Whitney). NaN when either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive).ravel().astype(bool)
    if scores.shape != positive.shape:
        raise RewardkitError(f"scores {scores.shape} and labels {positive.shape} differ in shape")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


# ---- baselines ---------------------------------------------------------------------------------
def elapsed_fraction(length: int) -> np.ndarray:
    """Baseline: progress = elapsed fraction of the episode, t / (T - 1). Returns (T,) float32."""
    if length <= 1:
        return np.ones(max(length, 0), dtype=np.float32)
    return (np.arange(length) / (length - 1)).astype(np.float32)


def constant_progress(length: int, value: float = 0.5) -> np.ndarray:
    """Baseline: the same progress for every frame. Returns (T,) float32."""
    return np.full(length, value, dtype=np.float32)
