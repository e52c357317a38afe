"""TOPReward labelling: rewardkit's prefix cache vs lerobot 0.6.1's `compute_topreward_progress`, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_vlm_label.py [--episodes 2 --episode_length 60]

One synthetic dataset (one camera "observation.images.top", 64x64 video) and one tiny random Qwen3-VL
(tests/models/topreward/topreward_helpers.py: 2 text layers of width 32; the same folder for both) are
labelled, end to end (model load, frame decoding, scoring, min-max, interpolation), by:

- the reference: `lerobot.rewards.topreward.compute_rabc_weights.compute_topreward_progress` at its
  default 15 anchors per episode (`--num-samples 15`): one full forward pass over each prefix;
- ours, `rewardkit.labelling.label_dataset` with the named model "topreward:<folder>":
  (a) at the same 15 anchors (`num_anchors=15`): the video encoded once, 15 prompt suffixes from the cache;
  (b) every frame (`num_anchors=None`).

Targets (PASS/FAIL printed): (a) >= 5x faster than the reference; (b) <= 2x the reference's time.
On a tiny model the VLM's FLOPs are small, so the times also show each pipeline's fixed costs (lerobot
decodes every frame through LeRobotDataset.__getitem__ and re-runs the video processor on every prefix).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="bench_vlm_label_"))
# lerobot's labelling script finds datasets by repo id under HF_LEROBOT_HOME: set it before importing lerobot.
os.environ["HF_LEROBOT_HOME"] = str(WORK / "lerobot_home")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "models" / "topreward"))

REPO_ID = "bench/topreward"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--episode_length", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from lerobot.rewards.topreward.compute_rabc_weights import compute_topreward_progress
    from topreward_helpers import make_tiny_topreward_vlm

    import rewardkit
    from rewardkit.data.dataset import open_dataset
    from rewardkit.data.synthetic import make_synthetic_dataset
    from rewardkit.labelling import label_dataset

    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = Path(os.environ["HF_LEROBOT_HOME"]) / REPO_ID
    make_synthetic_dataset(
        root,
        repo_id=REPO_ID,
        num_episodes=args.episodes,
        episode_length=args.episode_length,
        image_size=args.image_size,
    )
    vlm = make_tiny_topreward_vlm(WORK / "vlm")
    frames = args.episodes * args.episode_length
    print(
        f"dataset: {args.episodes} episodes x {args.episode_length} frames ({args.image_size}x{args.image_size}),"
        f" tiny random Qwen3-VL at {vlm}, device {args.device}"
    )

    start = time.perf_counter()
    compute_topreward_progress(
        REPO_ID,
        vlm_name=str(vlm),
        output_path=str(WORK / "lerobot.parquet"),
        device=args.device,
        num_samples=15,
    )
    reference = time.perf_counter() - start

    def ours(num_anchors):
        start = time.perf_counter()
        model = rewardkit.load(f"topreward:{vlm}", device=args.device, num_anchors=num_anchors)
        labels = label_dataset(model, open_dataset(root=root), stride=1, show_progress=False)
        assert sum(len(e.outputs["progress"]) for e in labels) == frames
        return time.perf_counter() - start

    anchors15 = ours(15)
    every = ours(None)
    rows = [
        ("lerobot compute_topreward_progress, 15 anchors", reference, None),
        ("rewardkit prefix cache, 15 anchors", anchors15, reference / anchors15 >= 5),
        ("rewardkit prefix cache, every frame", every, every <= 2 * reference),
    ]
    print(f"\n{'':50s} {'seconds':>8s} {'frames/s':>9s} {'vs lerobot 15':>14s}  target")
    for name, seconds, passed in rows:
        ratio = reference / seconds
        target = "" if passed is None else ("PASS" if passed else "FAIL")
        goal = {1: ">= 5x faster", 2: "<= 2x the time"}.get(rows.index((name, seconds, passed)), "")
        print(f"{name:50s} {seconds:8.2f} {frames / seconds:9.1f} {ratio:13.2f}x  {target} {goal}")


if __name__ == "__main__":
    main()
