"""Planning figure for scale-out: cache-build frames/s of one worker, and what a big dataset costs on N.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_cache_scale.py [--encoders clip-random:tiny efficientnet-lite0]

Builds the feature cache of the bundled dataset (rewardkit/sim/bundled: 48 episodes, 1,549 frames, one
64x64 camera) from scratch with each encoder in one process (one torch thread unless --threads: one
worker = one core here), `--repeats` times, and prints the best frames/s with where the time went
(decoding runs on a thread beside the encoder). Then the cost of 1,000,000 frames x 3 cameras on N
workers, assuming workers scale linearly (each encodes its own episodes; the merge copies 2*D bytes per
frame, seconds for millions of frames). The CPU model and the machine's load are printed with it:
throughput on a loaded machine is lower than on a quiet one. On a GPU, run the same with --device=cuda.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import rewardkit  # noqa: E402
from rewardkit.cache import BuildStats, build_cache  # noqa: E402
from rewardkit.data.dataset import open_dataset  # noqa: E402
from rewardkit.encoders import make_encoder  # noqa: E402

BUNDLED = Path(rewardkit.__file__).parent / "sim" / "bundled" / "metaworld_push_pick_place"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["clip-random:tiny", "efficientnet-lite0"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frames", type=float, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32, 128])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = open_dataset(root=BUNDLED)
    camera = dataset.camera_keys[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu_name()}, {os.cpu_count()} cores, load average {load:.1f}; torch threads {args.threads}; "
          f"device {args.device}; {len(dataset.episodes())} episodes, camera {camera}")  # fmt: skip
    rates = {}
    for spec in args.encoders:
        encoder = make_encoder(spec, device=args.device)
        best = None
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                stats = BuildStats()
                started = time.perf_counter()
                build_cache(dataset, encoder, [camera], cache_dir=tmp, batch_size=args.batch_size, progress=False,
                            stats=stats)  # fmt: skip
                elapsed = time.perf_counter() - started
            if best is None or elapsed < best[0]:
                best = (elapsed, stats)
        elapsed, stats = best
        rates[spec] = stats.frames / elapsed
        print(f"{spec:22s} {stats.frames} frames in {elapsed:6.2f} s = {rates[spec]:7.1f} frames/s per worker "
              f"(encoder {stats.encode_s:.2f} s, decoding {stats.decode_s:.2f} s on its thread, waited "
              f"{stats.decode_wait_s:.2f} s)")  # fmt: skip
    total = args.frames * args.cameras
    print(f"\n{args.frames:,.0f} frames x {args.cameras} cameras = {total:,.0f} encodes; hours on N workers:")
    print("encoder".ljust(22) + "".join(f"{n:>10d}" for n in args.workers))
    for spec, rate in rates.items():
        print(spec.ljust(22) + "".join(f"{total / (rate * n) / 3600:10.2f}" for n in args.workers))


if __name__ == "__main__":
    main()
