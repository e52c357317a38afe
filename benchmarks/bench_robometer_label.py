"""Robometer labelling and online cost: rewardkit's `label_episode` vs lerobot 0.6.1's
`compute_robometer_progress`, on one tiny random Robometer (tests/models/robometer/robometer_helpers.py:
a Qwen3-VL with 2 text layers of width 32, the same checkpoint for both), and the cost of one online step.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_robometer_label.py [--episodes 2 --episode_length 60]

Both score every frame from K=4 frames (round(linspace(0, t, 4))), batch 8 queries per forward pass; the
printed max |difference| must be ~0. On a tiny model the VLM's FLOPs are small, so the times mostly show
each pipeline's fixed costs: lerobot reads every frame through LeRobotDataset.__getitem__ (a video seek
each) and runs Qwen's image processor on every query's K images (we: once per distinct frame of a batch;
also timed alone at 480x640, where it costs more than a GPU forward pass). Last, the time to load a
155M-parameter Robometer (lerobot initialises the Qwen3-VL randomly before reading its weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="bench_robometer_"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_LEROBOT_HOME"] = str(WORK / "lerobot_home")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models" / "robometer"))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--episode_length", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--load_hidden",
        type=int,
        default=1024,
        help="width of the larger model whose load is timed (0: skip)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import lerobot.rewards.robometer.compute_rabc_weights as lerobot_labeller
    from lerobot.configs.rewards import RewardModelConfig
    from robometer_helpers import CAMERA, lerobot_robometer_checkpoint

    import rewardkit
    from rewardkit.data.dataset import open_dataset
    from rewardkit.data.synthetic import make_synthetic_dataset
    from rewardkit.labelling.labeller import label_dataset
    from rewardkit.models.base import import_model_modules
    from rewardkit.online.monitor import RewardMonitor

    repo_id = "bench/robometer"
    root = Path(os.environ["HF_LEROBOT_HOME"]) / repo_id
    make_synthetic_dataset(
        root, num_episodes=args.episodes, episode_length=args.episode_length, image_size=args.image_size
    )
    checkpoint = lerobot_robometer_checkpoint(WORK / "model")
    frames = args.episodes * args.episode_length

    # lerobot rebuilds a default config (the 4B base's, from the hub): give it the checkpoint's.
    lerobot_labeller.RobometerConfig = lambda **kw: RewardModelConfig.from_pretrained(checkpoint)
    start = time.perf_counter()
    out = lerobot_labeller.compute_robometer_progress(
        repo_id,
        str(checkpoint),
        output_path=str(WORK / "lerobot.parquet"),
        device="cpu",
        batch_size=8,
        image_key=CAMERA,
    )
    theirs_s = time.perf_counter() - start
    theirs = pq.read_table(out).column("progress_sparse").to_numpy()

    import_model_modules()  # rewardkit's one-off import of every model module (seconds), not timed
    start = time.perf_counter()
    model = rewardkit.load(f"robometer:{checkpoint}", label_batch_size=8, device="cpu")
    load_s = time.perf_counter() - start
    labels = label_dataset(model, open_dataset(root=root), show_progress=False)
    ours_s = time.perf_counter() - start
    ours = np.concatenate([episode.outputs["progress"] for episode in labels])

    dataset = open_dataset(root=root)
    video = dataset.read_frames(dataset.episode_indices[0], CAMERA)
    task = dataset.episode(dataset.episode_indices[0]).task
    monitor = RewardMonitor(model, fps=dataset.fps)
    start = time.perf_counter()
    for frame in video:
        monitor.step({CAMERA: frame, "task": task})
    step_s = (time.perf_counter() - start) / len(video)

    print(
        f"frames: {frames} ({args.episodes} x {args.episode_length}, {args.image_size}px), CPU threads {args.threads}"
    )
    print(f"lerobot compute_robometer_progress: {theirs_s:.2f} s ({1e3 * theirs_s / frames:.1f} ms/frame)")
    print(
        f"rewardkit load + label_dataset:     {ours_s:.2f} s ({1e3 * ours_s / frames:.1f} ms/frame; load "
        f"{load_s:.2f} s, labelling {1e3 * (ours_s - load_s) / frames:.1f} ms/frame)  -> {theirs_s / ours_s:.2f}x"
    )
    print(f"max |ours - lerobot| = {np.abs(ours - theirs).max():.2e}")
    print(f"online step (every=1, one query of 4 frames): {1e3 * step_s:.1f} ms")

    # Image preprocessing at a real camera size (480x640): lerobot's encoder processes every frame of every
    # query; ours each distinct frame of a batch once (same encoded batch).
    from lerobot.rewards.robometer.processor_robometer import RobometerEncoderProcessorStep

    big = np.random.default_rng(0).integers(0, 256, (48, 480, 640, 3), dtype=np.uint8)
    queries = [big[model.query_positions(t)] for t in range(len(big))]
    reference_encoder = RobometerEncoderProcessorStep(base_model_id=model.config.base_model_id, max_frames=4)
    timings = {}
    for name, encoder in (("lerobot", reference_encoder), ("rewardkit", model.encoder)):
        start = time.perf_counter()
        for first in range(0, len(queries), 8):
            if name == "rewardkit":
                encoder._processor.image_processor.clear()
            encoder.encode_samples([(clip, task) for clip in queries[first : first + 8]])
        timings[name] = (time.perf_counter() - start) / len(queries)
    print(
        f"processor per labelled frame at 480x640 (K=4, batch 8): lerobot {1e3 * timings['lerobot']:.0f} ms, "
        f"rewardkit {1e3 * timings['rewardkit']:.0f} ms -> {timings['lerobot'] / timings['rewardkit']:.1f}x"
    )

    if args.load_hidden:
        # Loading: lerobot's constructor randomly initialises the whole Qwen3-VL before reading the weights.
        from lerobot.rewards.robometer import RobometerRewardModel

        widths = dict(hidden=args.load_hidden, text_layers=8, vision_layers=4)
        larger = lerobot_robometer_checkpoint(WORK / "larger", widths=widths, torch_dtype="bfloat16")
        start = time.perf_counter()
        reference = RobometerRewardModel.from_pretrained(larger)
        theirs_load = time.perf_counter() - start
        start = time.perf_counter()
        rewardkit.load(larger, device="cpu")
        ours_load = time.perf_counter() - start
        size = sum(p.numel() for p in reference.parameters()) / 1e6
        print(
            f"load a {size:.0f}M-parameter Robometer (bf16, CPU): lerobot {theirs_load:.2f} s, rewardkit "
            f"{ours_load:.2f} s -> {theirs_load / ours_load:.1f}x"
        )


if __name__ == "__main__":
    main()
