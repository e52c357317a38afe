"""The RA-BC weight distribution of a progress file, overall and per episode: summary dict, JSON, PNG."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.io_utils import atomic_write
from rewardkit.rabc.weighter import RABCWeighter
from rewardkit.rabc.weights import summarize_weights


def weight_report(weighter: RABCWeighter) -> dict[str, Any]:
    """Overall and per-episode weight statistics plus the κ suggestion, as a JSON-ready dict.

    Per episode: frames, mean weight, zero/full/NaN shares, mean delta (all in one pass of sorted
    episode ids, no per-episode Python loop over frames).
    """
    episodes, inverse, counts = np.unique(weighter.episode_index, return_inverse=True, return_counts=True)
    weights = weighter.weights.astype(np.float64)
    deltas = weighter.deltas
    finite = np.isfinite(deltas)

    def per_episode_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=episodes.size)

    finite_counts = per_episode_sum(finite.astype(np.float64))
    delta_sums = per_episode_sum(np.where(finite, deltas, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        delta_means = delta_sums / finite_counts
    per_episode = [
        {
            "episode_index": int(e),
            "num_frames": int(n),
            "mean_weight": float(w),
            "zero_share": float(z),
            "full_share": float(f),
            "nan_share": float(1.0 - k / n),
            "delta_mean": None if not np.isfinite(d) else float(d),
        }
        for e, n, w, z, f, k, d in zip(
            episodes,
            counts,
            per_episode_sum(weights) / counts,
            per_episode_sum((weights == 0.0).astype(np.float64)) / counts,
            per_episode_sum((weights == 1.0).astype(np.float64)) / counts,
            finite_counts,
            delta_means,
            strict=True,
        )
    ]
    suggestion = weighter.suggest_kappa()
    overall = asdict(summarize_weights(weighter.weights, deltas, weighter.delta_mean, weighter.delta_std))
    return {
        "progress_path": str(weighter.path),
        "head_mode": weighter.head_mode,
        "chunk_size": weighter.chunk_size,
        "kappa": weighter.kappa,
        "epsilon": weighter.epsilon,
        "nan_weight": weighter.nan_weight,
        "overall": overall,
        "kappa_suggestion": asdict(suggestion),
        "episodes": per_episode,
    }


def write_report_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report dict as JSON, atomically."""
    text = json.dumps(report, indent=2, allow_nan=False, default=float)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_frame_weights(weighter: RABCWeighter, path: str | Path, dataset: Any = None) -> Path:
    """Write every frame's weight as a weights parquet (index, weight, episode_index, delta), atomically.

    The provenance (RA-BC and its parameters, the progress file, and `dataset`'s fingerprint when given)
    goes into the metadata, so `--sample_weighting.type=precomputed` can train on the file and refuse it
    for another dataset.
    """
    from rewardkit.rabc.frame_weights import write_weights_parquet

    provenance = {
        "source": "rabc",
        "progress_path": str(weighter.path),
        "head_mode": weighter.head_mode,
        "chunk_size": weighter.chunk_size,
        "kappa": weighter.kappa,
        "epsilon": weighter.epsilon,
        "nan_weight": weighter.nan_weight,
    }
    if dataset is not None:
        from rewardkit.labelling.parquet import dataset_fingerprint

        provenance["dataset"] = dataset_fingerprint(dataset)
    return write_weights_parquet(
        path,
        weighter.index,
        weighter.weights,
        provenance,
        extra_columns={"episode_index": weighter.episode_index, "delta": weighter.deltas},
    )


def plot_weights(weighter: RABCWeighter, report: dict[str, Any], path: str | Path) -> Path:
    """PNG with the delta histogram (κ and μ marked), the weight histogram, and the per-episode mean
    weight with its zero- and full-weight shares."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    deltas = weighter.deltas[np.isfinite(weighter.deltas)]
    episodes = report["episodes"]
    figure, axes = plt.subplots(3, 1, figsize=(9, 10))
    ax = axes[0]
    if deltas.size:
        ax.hist(deltas, bins=60, color="#2E86AB")
    ax.axvline(weighter.kappa, color="#D1495B", label=f"kappa = {weighter.kappa:g}")
    ax.axvline(weighter.delta_mean, color="#28A745", linestyle="--", label=f"mu = {weighter.delta_mean:.3g}")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set(title=f"progress delta over {weighter.chunk_size} frames", xlabel="delta", ylabel="frames")
    ax.legend()
    ax = axes[1]
    ax.hist(weighter.weights, bins=np.linspace(0, 1, 41), color="#2E86AB")
    overall = report["overall"]
    ax.set(
        title=f"weights: mean {overall['mean_weight']:.3f} (healthy 0.3-0.8), zero {overall['zero_share']:.1%}, "
        f"full {overall['full_share']:.1%}",
        xlabel="weight",
        ylabel="frames",
    )
    ax = axes[2]
    x = np.arange(len(episodes))
    ax.bar(x, [e["mean_weight"] for e in episodes], color="#2E86AB", label="mean weight")
    ax.plot(x, [e["zero_share"] for e in episodes], "v", color="#D1495B", label="zero share")
    ax.plot(x, [e["full_share"] for e in episodes], "^", color="#28A745", label="full share")
    step = max(1, len(episodes) // 20)
    ax.set_xticks(x[::step], [str(e["episode_index"]) for e in episodes][::step])
    ax.set(title="per episode", xlabel="episode", ylabel="share / weight", ylim=(0, 1.05))
    ax.legend(loc="lower right")
    figure.tight_layout()
    try:
        return atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(figure)
