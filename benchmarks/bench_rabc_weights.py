"""RA-BC weighter set-up on a 1,000,000-frame progress file: rewardkit vs lerobot 0.6.1, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_rabc_weights.py [--episodes 1000 --frames 1000]

Writes a progress parquet (lerobot's schema: index, episode_index, frame_index, progress_sparse) of
`episodes x frames` frames: noisy, mostly rising progress with backward stretches and 0.1% NaN. Then:

- rewardkit `RABCWeighter.from_file`: read + every frame's delta and weight + the index table (best of 3);
- lerobot's `RABCWeights(...)` set-up on the same file (once: it is slow);
- per-batch look-up of 256 random frames, both;
- agreement: both weighters' weights on 2,000 random frames.

Target: rewardkit's set-up under 2 s on 1,000,000 frames.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from rewardkit.rabc import RABCWeighter  # noqa: E402

CHUNK_SIZE = 50
KAPPA = 0.01


def write_progress_file(path: Path, episodes: int, frames: int, seed: int = 0) -> None:
    """A progress parquet of episodes x frames rows (random walk upwards, clipped to [0, 1], some NaN)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(1.0 / frames, 3.0 / frames, size=(episodes, frames)).astype(np.float32)
    progress = np.clip(np.cumsum(steps, axis=1), 0.0, 1.0).reshape(-1)
    progress[rng.random(progress.size) < 0.001] = np.nan
    n = episodes * frames
    pd.DataFrame(
        {
            "index": np.arange(n, dtype=np.int64),
            "episode_index": np.repeat(np.arange(episodes, dtype=np.int64), frames),
            "frame_index": np.tile(np.arange(frames, dtype=np.int64), episodes),
            "progress_sparse": progress,
        }
    ).to_parquet(path)


def lerobot_rabc_module():
    """lerobot's rabc.py loaded alone (importing `lerobot.rewards` would also import SARM/transformers)."""
    import lerobot

    spec = importlib.util.spec_from_file_location(
        "_lerobot_rabc_reference", Path(lerobot.__file__).parent / "rewards" / "sarm" / "rabc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--skip_reference", action="store_true", help="time rewardkit only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference_module = None if args.skip_reference else lerobot_rabc_module()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sarm_progress.parquet"
        t0 = time.perf_counter()
        write_progress_file(path, args.episodes, args.frames)
        n = args.episodes * args.frames
        print(
            f"progress file: {n:,} frames ({args.episodes} episodes x {args.frames}), "
            f"{path.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - t0:.1f} s"
        )

        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            ours = RABCWeighter.from_file(path, chunk_size=CHUNK_SIZE, kappa=KAPPA)
            times.append(time.perf_counter() - t0)
        ours_setup = min(times)
        s = ours.summary
        print(
            f"rewardkit set-up: {ours_setup:.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)}); "
            f"mean weight {s.mean_weight:.3f}, zero {s.zero_share:.1%}, full {s.full_share:.1%}, "
            f"delta mean {s.delta_mean:.4f} std {s.delta_std:.4f}"
        )
        print(f"target < 2 s: {'MET' if ours_setup < 2.0 else 'MISSED'}")

        rng = np.random.default_rng(1)
        batch = {"index": torch.from_numpy(rng.integers(0, n, 256))}
        t0 = time.perf_counter()
        for _ in range(100):
            ours.compute_batch_weights(batch)
        ours_batch = (time.perf_counter() - t0) / 100
        print(f"rewardkit per batch of 256: {ours_batch * 1e3:.3f} ms")

        if reference_module is None:
            return
        t0 = time.perf_counter()
        reference = reference_module.RABCWeights(
            path, chunk_size=CHUNK_SIZE, kappa=KAPPA, device=torch.device("cpu")
        )
        reference_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(10):
            reference.compute_batch_weights(batch)
        reference_batch = (time.perf_counter() - t0) / 10
        print(f"lerobot set-up:   {reference_setup:.3f} s; per batch of 256: {reference_batch * 1e3:.3f} ms")
        print(
            f"set-up ratio lerobot / rewardkit: {reference_setup / ours_setup:.1f}x; "
            f"per-batch ratio: {reference_batch / ours_batch:.1f}x"
        )

        sample = rng.choice(n, 2000, replace=False)
        reference_deltas = np.array([reference._compute_delta(int(i)) for i in sample])
        reference_weights = reference._compute_weights(reference_deltas)
        ours_weights = ours.weights_for(torch.from_numpy(sample)).numpy()
        print(
            f"agreement on 2,000 random frames: max |w_ours - w_lerobot| = "
            f"{np.abs(ours_weights - reference_weights).max():.2e}; "
            f"delta mean {ours.delta_mean:.6f} vs {reference.delta_mean:.6f}, "
            f"std {ours.delta_std:.6f} vs {reference.delta_std:.6f}"
        )


if __name__ == "__main__":
    main()
