"""RA-BC sample weights (SARM paper, eqs. 8-9) as pure, vectorised functions of a progress table.

For frame t of an episode, with Δ the policy's chunk size and φ the progress:

    r_t = φ(o_{t+Δ}) - φ(o_t)                                       (progress delta)
    w̃_t = clip((r_t - (μ - 2σ)) / (4σ + ε), 0, 1)                  (eq. 8, μ and σ over the dataset)
    w_t = 1 if r_t > κ;  w̃_t if 0 <= r_t <= κ;  0 if r_t < 0       (eq. 9)

Choices this module makes explicit (all documented in `compute_deltas` / `rabc_weights`):

- **Episode ends clamp**: when t + Δ is past the episode's last frame, the last frame is used, so the
  final Δ frames of an episode are judged by the progress still to be made before the episode ends
  (the last frame's own delta is 0).
- **NaN progress**: a frame whose delta is NaN (its own progress or its future frame's progress is NaN,
  or the future frame is missing from the table) gets `nan_weight`, 1.0 by default: a frame we know
  nothing about is trained on as plain behaviour cloning would, rather than dropped; RA-BC only removes
  data it has evidence against. Use `nan_weight=0` to train only on frames with a known delta. NaN
  deltas are left out of μ and σ.
- **μ and σ** are the mean and (population) standard deviation of the finite deltas, as in the paper;
  no clamping (lerobot 0.6.1 clamps μ at 0 and σ at ε, which differs only when the mean delta is
  negative or all deltas are equal).

Everything here is O(number of frames): no per-frame Python, no sorting, no pandas group-bys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardkit.errors import RewardkitError

HEALTHY_MEAN_WEIGHT = (0.3, 0.8)


@dataclass(frozen=True)
class WeightSummary:
    """Distribution of RA-BC weights and deltas over a set of frames.

    Args:
        num_frames: frames counted.
        mean_weight: mean final weight (a healthy value lies in 0.3-0.8).
        zero_share: share of frames with weight exactly 0.
        full_share: share of frames with weight exactly 1.
        nan_share: share of frames whose delta is NaN (given `nan_weight`).
        delta_mean: μ, mean of the finite deltas.
        delta_std: σ, standard deviation of the finite deltas.
    """

    num_frames: int
    mean_weight: float
    zero_share: float
    full_share: float
    nan_share: float
    delta_mean: float
    delta_std: float


def compute_deltas(
    index: np.ndarray, episode_index: np.ndarray, progress: np.ndarray, chunk_size: int
) -> np.ndarray:
    """Progress delta r = φ(t + Δ) - φ(t) of every frame, clamped at its episode's last frame.

    Frames are addressed by their global dataset index: frame `index + chunk_size` is the future frame
    when it lies in the same episode, otherwise the episode's last frame (largest index) is used.

    Args:
        index: (N,) integer global frame index of each row, unique, any order.
        episode_index: (N,) integer episode of each row. Episodes must occupy disjoint index ranges.
        progress: (N,) float progress of each row; NaN where unknown.
        chunk_size: Δ, frames ahead (>= 1).

    Returns:
        (N,) float64 deltas in row order; NaN where either end's progress is NaN or the future frame is
        not in the table.

    Raises:
        ValueError: on negative or duplicate indices, mismatched lengths, interleaved episodes, or a
            chunk size < 1.
    """
    index = np.asarray(index)
    episode_index = np.asarray(episode_index)
    progress = np.asarray(progress, dtype=np.float64)
    if chunk_size < 1:
        raise RewardkitError(f"chunk_size must be >= 1, got {chunk_size}")
    if not (index.shape == episode_index.shape == progress.shape) or index.ndim != 1:
        raise RewardkitError(
            f"index, episode_index and progress must be 1-D of equal length, got shapes "
            f"{index.shape}, {episode_index.shape}, {progress.shape}"
        )
    if index.size == 0:
        return np.zeros(0, dtype=np.float64)
    index = index.astype(np.int64, copy=False)
    episode_index = episode_index.astype(np.int64, copy=False)
    if index.min() < 0 or episode_index.min() < 0:
        raise RewardkitError("index and episode_index must be non-negative")

    num_slots = int(index.max()) + 1
    if num_slots == index.size and index[0] == 0 and bool(np.all(index[1:] > index[:-1])):
        # The usual file: rows are frames 0..N-1 in order, already a table by global index.
        episode_at, progress_at = episode_index, progress
    else:
        # Dense tables by global index: a scatter, then every look-up is an array gather.
        episode_at = np.full(num_slots, -1, dtype=np.int64)
        episode_at[index] = episode_index
        if np.count_nonzero(episode_at >= 0) != index.size:
            raise RewardkitError("duplicate frame indices in the progress table")
        progress_at = np.full(num_slots, np.nan, dtype=np.float64)
        progress_at[index] = progress

    last_index = np.full(int(episode_index.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(last_index, episode_index, index)
    future = np.minimum(index + chunk_size, last_index[episode_index])
    future_episode = episode_at[future]
    interleaved = (future_episode >= 0) & (future_episode != episode_index)
    if interleaved.any():
        row = int(np.flatnonzero(interleaved)[0])
        raise RewardkitError(
            f"episodes overlap in index: frame {int(index[row])} of episode {int(episode_index[row])} "
            f"is followed by frame {int(future[row])} of episode {int(future_episode[row])} before its "
            "own episode ends"
        )
    return progress_at[future] - progress


def rabc_weights(
    deltas: np.ndarray,
    kappa: float = 0.01,
    epsilon: float = 1e-6,
    nan_weight: float = 1.0,
    delta_mean: float | None = None,
    delta_std: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """Final RA-BC weights from progress deltas (eqs. 8-9).

    Args:
        deltas: (N,) progress deltas r; NaN allowed.
        kappa: κ, deltas above it get weight 1.
        epsilon: ε in the soft weight's denominator 4σ + ε.
        nan_weight: weight of frames whose delta is NaN (1.0: plain behaviour cloning for them).
        delta_mean: μ; computed over the finite deltas when None.
        delta_std: σ; computed over the finite deltas when None.

    Returns:
        (weights (N,) float32 in [0, 1], μ, σ). With no finite delta, μ = σ = 0.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    finite = np.isfinite(deltas)
    if delta_mean is None or delta_std is None:
        known = deltas[finite]
        mean = float(known.mean()) if known.size else 0.0
        std = float(known.std()) if known.size else 0.0
        delta_mean = mean if delta_mean is None else delta_mean
        delta_std = std if delta_std is None else delta_std
    # Eq. 8 then eq. 9, in place on one float32 buffer.
    weights = (deltas - (delta_mean - 2.0 * delta_std)).astype(np.float32)
    weights *= np.float32(1.0 / (4.0 * delta_std + epsilon))
    np.clip(weights, 0.0, 1.0, out=weights)
    weights[deltas > kappa] = 1.0
    weights[deltas < 0.0] = 0.0
    weights[~finite] = nan_weight
    return weights, float(delta_mean), float(delta_std)


def summarize_weights(
    weights: np.ndarray, deltas: np.ndarray, delta_mean: float, delta_std: float
) -> WeightSummary:
    """Summary of weights (N,) and deltas (N,) over the same frames (see `WeightSummary`)."""
    weights = np.asarray(weights)
    n = int(weights.size)
    if n == 0:
        return WeightSummary(0, float("nan"), 0.0, 0.0, 0.0, delta_mean, delta_std)
    return WeightSummary(
        num_frames=n,
        mean_weight=float(weights.mean(dtype=np.float64)),
        zero_share=float(np.count_nonzero(weights == 0.0)) / n,
        full_share=float(np.count_nonzero(weights == 1.0)) / n,
        nan_share=float(np.count_nonzero(~np.isfinite(deltas))) / n,
        delta_mean=float(delta_mean),
        delta_std=float(delta_std),
    )


def mean_weight_curve(
    deltas: np.ndarray,
    kappas: np.ndarray,
    epsilon: float = 1e-6,
    nan_weight: float = 1.0,
) -> np.ndarray:
    """Dataset mean weight for each candidate κ, without recomputing all weights per κ.

    Sorts the deltas once (O(N log N)) and answers each κ by a binary search into cumulative sums:
    frames with r > κ count 1, frames with 0 <= r <= κ count their soft weight.

    Args:
        deltas: (N,) progress deltas; NaN allowed.
        kappas: (K,) candidate κ values.
        epsilon: ε of eq. 8.
        nan_weight: weight of NaN-delta frames.

    Returns:
        (K,) mean weight per κ; non-increasing in κ.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    kappas = np.asarray(kappas, dtype=np.float64)
    n = deltas.size
    if n == 0:
        return np.full(kappas.shape, np.nan)
    finite = deltas[np.isfinite(deltas)]
    nan_total = (n - finite.size) * nan_weight
    if finite.size == 0:
        return np.full(kappas.shape, nan_total / n)
    mean, std = float(finite.mean()), float(finite.std())
    non_negative = np.sort(finite[finite >= 0.0])
    soft = np.clip((non_negative - (mean - 2.0 * std)) / (4.0 * std + epsilon), 0.0, 1.0)
    soft_cumsum = np.concatenate([[0.0], np.cumsum(soft)])
    split = np.searchsorted(non_negative, kappas, side="right")  # count of 0 <= r <= κ
    above = non_negative.size - split
    return (above + soft_cumsum[split] + nan_total) / n


@dataclass(frozen=True)
class KappaSuggestion:
    """A κ suggestion from the delta distribution.

    Args:
        kappa: suggested κ (mean weight closest to `target_mean_weight`).
        mean_weight: the dataset's mean weight at that κ.
        current_kappa: the κ in use.
        current_mean_weight: the dataset's mean weight at the κ in use.
        healthy: whether the current mean weight lies in 0.3-0.8.
        options: κ = μ, μ + σ, μ + 2σ (lerobot's tuning guide) with their mean weights.
    """

    kappa: float
    mean_weight: float
    current_kappa: float
    current_mean_weight: float
    healthy: bool
    options: dict[str, tuple[float, float]]

    def describe(self) -> str:
        """One paragraph a user can act on."""
        low, high = HEALTHY_MEAN_WEIGHT
        state = "healthy" if self.healthy else f"outside the healthy range {low}-{high}"
        lines = [
            f"mean weight {self.current_mean_weight:.3f} at kappa={self.current_kappa:g} ({state}); "
            f"suggested --sample_weighting.kappa={self.kappa:.4g} (mean weight {self.mean_weight:.3f})",
        ]
        for name, (kappa, weight) in self.options.items():
            lines.append(f"  kappa = {name} = {kappa:.4g} -> mean weight {weight:.3f}")
        return "\n".join(lines)


def suggest_kappa(
    deltas: np.ndarray,
    kappa: float,
    epsilon: float = 1e-6,
    nan_weight: float = 1.0,
    target_mean_weight: float = 0.55,
) -> KappaSuggestion:
    """Suggest κ so that the dataset's mean weight lands near `target_mean_weight` (mid 0.3-0.8).

    The mean weight falls as κ grows (frames move from weight 1 to their soft weight), so the κ is found
    on a fine grid of the non-negative deltas' quantiles. When no κ reaches the target (e.g. most deltas
    are negative), the κ whose mean weight is closest is returned.

    Args:
        deltas: (N,) progress deltas; NaN allowed.
        kappa: the κ currently in use.
        epsilon: ε of eq. 8.
        nan_weight: weight of NaN-delta frames.
        target_mean_weight: the mean weight aimed at.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    finite = deltas[np.isfinite(deltas)]
    mean = float(finite.mean()) if finite.size else 0.0
    std = float(finite.std()) if finite.size else 0.0
    positive = finite[finite >= 0.0]
    grid = np.quantile(positive, np.linspace(0.0, 1.0, 1001)) if positive.size else np.zeros(1)
    grid = np.unique(np.concatenate([[0.0], grid]))
    option_kappas = {"mu": mean, "mu + sigma": mean + std, "mu + 2 sigma": mean + 2.0 * std}
    curve = mean_weight_curve(
        deltas, np.concatenate([grid, [kappa], list(option_kappas.values())]), epsilon, nan_weight
    )
    grid_curve = curve[: grid.size]
    best = int(np.argmin(np.abs(grid_curve - target_mean_weight)))
    current = float(curve[grid.size])
    options = {
        name: (float(k), float(w))
        for (name, k), w in zip(option_kappas.items(), curve[grid.size + 1 :], strict=True)
    }
    low, high = HEALTHY_MEAN_WEIGHT
    return KappaSuggestion(
        kappa=float(grid[best]),
        mean_weight=float(grid_curve[best]),
        current_kappa=float(kappa),
        current_mean_weight=current,
        healthy=bool(low <= current <= high),
        options=options,
    )
