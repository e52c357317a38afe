"""Per-frame success labels for the success classifier: pure functions, arrays in, arrays out."""

from __future__ import annotations

import numpy as np

from rewardkit.errors import RewardkitError


def labels_from_reward(reward: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Success labels from a per-frame reward column (lerobot's `next.reward`): reward > threshold.

    reward: (T,) or (T, 1). Returns (T,) float32 in {0, 1}.
    """
    reward = np.asarray(reward, dtype=np.float64)
    if reward.ndim == 2 and reward.shape[1] == 1:
        reward = reward[:, 0]
    if reward.ndim != 1:
        raise RewardkitError(f"reward must be (T,) or (T, 1), got shape {reward.shape}")
    return (reward > threshold).astype(np.float32)


def labels_last_k(length: int, succeeded: bool, last_k: int) -> np.ndarray:
    """The last `last_k` frames of a successful episode are successes; every other frame, and every frame of
    a failed episode, is not. Returns (length,) float32 in {0, 1}."""
    if length <= 0:
        raise RewardkitError(f"episode length must be positive, got {length}")
    if last_k <= 0:
        raise RewardkitError(f"last_k must be positive, got {last_k}")
    labels = np.zeros(length, dtype=np.float32)
    if succeeded:
        labels[max(0, length - last_k) :] = 1.0
    return labels


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample loss weights (N,) that give both classes the same total weight (mean weight 1)."""
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return np.ones(labels.size, dtype=np.float32)
    return np.where(labels, labels.size / (2 * positives), labels.size / (2 * negatives)).astype(np.float32)
