"""RA-BC formulas (eqs. 8-9) against hand-computed values, episode-end clamping, NaN progress."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rewardkit.rabc import (
    ProgressTable,
    RABCWeighter,
    UniformWeighter,
    compute_deltas,
    mean_weight_curve,
    rabc_weights,
    suggest_kappa,
)

EPS = 1e-6


def _write_progress(path, episodes: list[np.ndarray], dense: list[np.ndarray] | None = None) -> None:
    frames, start = [], 0
    for e, progress in enumerate(episodes):
        n = len(progress)
        frame = {
            "index": np.arange(start, start + n),
            "episode_index": np.full(n, e),
            "frame_index": np.arange(n),
            "progress_sparse": np.asarray(progress, dtype=np.float32),
        }
        if dense is not None:
            frame["progress_dense"] = np.asarray(dense[e], dtype=np.float32)
        frames.append(pd.DataFrame(frame))
        start += n
    pd.concat(frames).to_parquet(path)


def test_deltas_clamp_at_episode_end_and_never_cross_episodes():
    # Episode 0 = indices 0..4, episode 1 = indices 5..7; chunk 2.
    progress = np.array([0.0, 0.1, 0.3, 0.2, 0.2, 0.5, 0.6, 0.9])
    index = np.arange(8)
    episode = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    deltas = compute_deltas(index, episode, progress, chunk_size=2)
    # t=3 and t=4 of episode 0 look at its last frame (index 4), not at episode 1.
    expected = [0.3, 0.1, -0.1, 0.0, 0.0, 0.4, 0.3, 0.0]
    np.testing.assert_allclose(deltas, expected, atol=1e-12)
    # Row order does not matter: the table is addressed by global index.
    order = np.array([7, 2, 5, 0, 3, 6, 1, 4])
    np.testing.assert_allclose(
        compute_deltas(index[order], episode[order], progress[order], 2),
        np.array(expected)[order],
        atol=1e-12,
    )


def test_weights_match_hand_computed_eqs_8_and_9():
    deltas = np.array([0.3, 0.1, -0.1, 0.0, 0.0])
    # mu = 0.3/5 = 0.06; sigma^2 = (0.24^2 + 0.04^2 + 0.16^2 + 2 * 0.06^2) / 5 = 0.0184.
    sigma = math.sqrt(0.0184)
    weights, mu, std = rabc_weights(deltas, kappa=0.05, epsilon=EPS)
    assert mu == pytest.approx(0.06)
    assert std == pytest.approx(sigma)
    soft_at_zero = (0.0 - (0.06 - 2 * sigma)) / (4 * sigma + EPS)  # ~0.3894, inside (0, 1)
    np.testing.assert_allclose(weights, [1.0, 1.0, 0.0, soft_at_zero, soft_at_zero], rtol=1e-6)
    # A larger kappa sends 0.1 to the soft branch: clip((0.1 - (0.06 - 2 sigma)) / (4 sigma + eps), 0, 1).
    weights, _, _ = rabc_weights(deltas, kappa=0.2, epsilon=EPS)
    assert weights[1] == pytest.approx((0.1 - 0.06 + 2 * sigma) / (4 * sigma + EPS), rel=1e-6)
    assert weights[0] == 1.0
    # The soft weight clips: an upward outlier (above mu + 2 sigma) at 1, a zero below mu - 2 sigma at 0.
    weights, _, _ = rabc_weights(np.array([0.0] * 9 + [0.1]), kappa=1.0, epsilon=EPS)  # mu 0.01, sigma 0.03
    assert weights[-1] == 1.0 and weights[0] == pytest.approx(0.05 / (0.12 + EPS), rel=1e-5)
    weights, _, _ = rabc_weights(np.array([0.1] * 9 + [0.0]), kappa=1.0, epsilon=EPS)  # mu 0.09, sigma 0.03
    assert weights[-1] == 0.0 and weights[0] == pytest.approx(0.07 / (0.12 + EPS), rel=1e-5)


def test_nan_progress_gets_nan_weight_and_is_left_out_of_the_statistics():
    # chunk 1; frame 2's progress is unknown, so deltas of frames 1 (future = 2) and 2 are NaN.
    progress = np.array([0.0, 0.2, np.nan, 0.5, 0.4])
    deltas = compute_deltas(np.arange(5), np.zeros(5, int), progress, chunk_size=1)
    assert np.isnan(deltas[[1, 2]]).all()
    np.testing.assert_allclose(deltas[[0, 3, 4]], [0.2, -0.1, 0.0], atol=1e-12)
    weights, mu, std = rabc_weights(deltas, kappa=0.05, epsilon=EPS)
    assert mu == pytest.approx(np.mean([0.2, -0.1, 0.0]))
    assert std == pytest.approx(np.std([0.2, -0.1, 0.0]))
    assert weights[1] == weights[2] == 1.0  # default: plain behaviour cloning for unknown frames
    assert weights[0] == 1.0 and weights[3] == 0.0
    dropped, _, _ = rabc_weights(deltas, kappa=0.05, epsilon=EPS, nan_weight=0.0)
    assert dropped[1] == dropped[2] == 0.0
    np.testing.assert_array_equal(dropped[[0, 3, 4]], weights[[0, 3, 4]])


def test_missing_future_frame_gives_nan_and_bad_tables_are_rejected():
    # Index 2 is absent from the table: frame 0's future (chunk 2) is unknown.
    deltas = compute_deltas(np.array([0, 1, 3]), np.zeros(3, int), np.array([0.0, 0.1, 0.3]), 2)
    assert np.isnan(deltas[0]) and deltas[1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="duplicate"):
        compute_deltas(np.array([0, 0]), np.array([0, 0]), np.array([0.1, 0.2]), 1)
    with pytest.raises(ValueError, match="overlap"):
        compute_deltas(np.arange(4), np.array([0, 1, 0, 1]), np.zeros(4), 1)
    with pytest.raises(ValueError, match="chunk_size"):
        compute_deltas(np.arange(2), np.zeros(2, int), np.zeros(2), 0)


def _lerobot_rabc_module():
    """lerobot's rabc.py loaded alone: importing `lerobot.rewards` would pull in SARM and transformers."""
    import importlib.util
    from pathlib import Path

    import lerobot

    spec = importlib.util.spec_from_file_location(
        "_lerobot_rabc_reference", Path(lerobot.__file__).parent / "rewards" / "sarm" / "rabc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_equal_lerobot_reference_on_random_progress(tmp_path):
    RABCWeights = _lerobot_rabc_module().RABCWeights  # noqa: N806

    rng = np.random.default_rng(0)
    episodes = [np.clip(np.cumsum(rng.normal(0.02, 0.03, n)), 0, 1) for n in (40, 55, 31)]
    path = tmp_path / "progress.parquet"
    _write_progress(path, episodes)
    ours = RABCWeighter.from_file(path, chunk_size=7, kappa=0.02)
    reference = RABCWeights(path, chunk_size=7, kappa=0.02, device=torch.device("cpu"))
    assert ours.delta_mean == pytest.approx(reference.delta_mean, rel=1e-5)
    assert ours.delta_std == pytest.approx(reference.delta_std, rel=1e-5)
    ref_deltas = np.array([reference._compute_delta(int(i)) for i in ours.index])
    np.testing.assert_allclose(ours.deltas, ref_deltas, atol=1e-6)
    np.testing.assert_allclose(ours.weights, reference._compute_weights(ref_deltas), atol=1e-5)


def test_weighter_looks_up_batches_by_global_index(tmp_path):
    path = tmp_path / "progress.parquet"
    sparse = [np.array([0.0, 0.1, 0.3, 0.2, 0.2]), np.array([0.5, 0.6, 0.9])]
    dense = [np.linspace(0, 1, 5), np.linspace(1, 0, 3)]
    _write_progress(path, sparse, dense)
    weighter = RABCWeighter.from_file(path, chunk_size=2, kappa=0.05)
    expected, _, _ = rabc_weights(
        compute_deltas(np.arange(8), np.array([0] * 5 + [1] * 3), np.concatenate(sparse), 2), kappa=0.05
    )
    batch_index = torch.tensor([6, 2, 0, 2])
    weights, stats = weighter.compute_batch_weights({"index": batch_index})
    np.testing.assert_allclose(weights.numpy(), expected[[6, 2, 0, 2]], rtol=1e-6)
    assert stats["zero_weight_share"] == pytest.approx(0.5)  # frame 2 twice (delta -0.1)
    assert stats["full_weight_share"] == pytest.approx(0.5)
    assert stats["mean_weight"] == pytest.approx(float(weights.mean()))
    assert weighter.get_stats()["delta_mean"] == pytest.approx(weighter.delta_mean)
    # The dense column is another signal: episode 1 goes backwards there.
    dense_weighter = RABCWeighter.from_file(path, chunk_size=2, kappa=0.05, head_mode="dense")
    assert dense_weighter.weights[5:].tolist() == [0.0, 0.0, dense_weighter.weights[7]]
    with pytest.raises(ValueError, match="not in progress file"):
        weighter.compute_batch_weights({"index": torch.tensor([8])})
    with pytest.raises(ValueError, match="'index'"):
        weighter.compute_batch_weights({"action": torch.zeros(2, 3)})
    ones, _ = UniformWeighter().compute_batch_weights({"index": batch_index})
    assert ones.tolist() == [1.0] * 4


def test_progress_file_errors_name_the_file(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"index": [0, 1], "episode_index": [0, 0], "progress_sparse": [0.1, 0.2]}).to_parquet(path)
    with pytest.raises(ValueError, match="progress_dense") as error:
        ProgressTable.from_file(path, "dense")
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError):
        ProgressTable.from_file(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="head_mode"):
        ProgressTable.from_file(path, "both")
    with pytest.raises(ValueError, match="nan_weight"):
        RABCWeighter.from_file(path, chunk_size=1, nan_weight=float("nan"))
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"index": [], "episode_index": [], "progress_sparse": []}).astype("int64").to_parquet(empty)
    with pytest.raises(ValueError, match="no frames"):
        RABCWeighter.from_file(empty, chunk_size=1)


def test_mean_weight_curve_and_kappa_suggestion_agree_with_direct_weights():
    rng = np.random.default_rng(1)
    deltas = np.concatenate([rng.normal(0.03, 0.02, 500), [np.nan] * 20])
    kappas = np.array([0.0, 0.01, 0.03, 0.05, 0.2])
    curve = mean_weight_curve(deltas, kappas, nan_weight=0.5)
    direct = [rabc_weights(deltas, kappa=k, nan_weight=0.5)[0].mean() for k in kappas]
    np.testing.assert_allclose(curve, direct, rtol=1e-5)
    assert np.all(np.diff(curve) <= 1e-12)
    suggestion = suggest_kappa(deltas, kappa=0.0)
    assert suggestion.current_mean_weight > 0.9 and not suggestion.healthy
    assert suggestion.mean_weight == pytest.approx(0.55, abs=0.02)
    assert rabc_weights(deltas, kappa=suggestion.kappa)[0].mean() == pytest.approx(
        suggestion.mean_weight, rel=1e-5
    )
