"""TOPReward labelling: rewardkit's prefix cache vs lerobot 0.6.1's `compute_topreward_progress`, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_vlm_label.py [--episodes 2 --episode_length 60 --repeats 3]

One synthetic dataset (one camera "observation.images.top", 64x64 video) and one tiny random Qwen3-VL
(tests/models/topreward/topreward_helpers.py: 2 text layers of width 32; the same folder for both) are
labelled by:

- the reference: `lerobot.rewards.topreward.compute_rabc_weights.compute_topreward_progress` at its
  default 15 anchors per episode (`--num-samples 15`): one full forward pass over each prefix;
- ours, `rewardkit.labelling.label_to_parquet` with the named model "topreward:<folder>":
  (a) at the same 15 anchors (`num_anchors=15`): the video encoded once, 15 prompt suffixes from the cache;
  (b) every frame (`num_anchors=None`).

The comparison is kept fair: the same frames (the dataset's video), the same dtype (`--dtype`, passed to
both models), the same torch thread count (`--threads`, pinned), each side writing its parquet. Two timings
per pipeline:
- end to end: model and processor loading, dataset opening, frame decoding, scoring, min-max,
  interpolation, the parquet;
- compute only: the model loaded once outside the timed region (lerobot's function is given the already
  built model and encoder step in place of its constructors), everything else as above.
One untimed warm-up run of every pipeline first (whichever runs first in a process pays the imports and
lazy initialisations), then `--repeats` rounds alternating the pipelines; the median is reported.

Wall-clock and process CPU time (all threads) are both printed: on a shared machine the CPU time is the
steadier of the two. Targets (PASS/FAIL printed, on the wall-clock medians, compute-only and end to end): (a) >= 5x faster than the
reference; (b) <= 2x the reference's time.
On a tiny model the VLM's FLOPs are small, so the times also show each pipeline's fixed costs (lerobot
decodes every frame through LeRobotDataset.__getitem__ and re-runs the processor on every prefix).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
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
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()

    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from lerobot.rewards.topreward import TOPRewardConfig, TOPRewardModel
    from lerobot.rewards.topreward import compute_rabc_weights as reference_script
    from lerobot.rewards.topreward.processor_topreward import TOPRewardEncoderProcessorStep
    from topreward_helpers import make_tiny_topreward_vlm

    import rewardkit
    from rewardkit.data.dataset import open_dataset
    from rewardkit.data.synthetic import make_synthetic_dataset
    from rewardkit.labelling import label_to_parquet, read_progress_parquet

    torch.set_num_threads(args.threads)
    root = Path(os.environ["HF_LEROBOT_HOME"]) / REPO_ID
    make_synthetic_dataset(
        root,
        repo_id=REPO_ID,
        num_episodes=args.episodes,
        episode_length=args.episode_length,
        image_size=args.image_size,
    )
    vlm = str(make_tiny_topreward_vlm(WORK / "vlm"))
    frames = args.episodes * args.episode_length
    print(
        f"dataset: {args.episodes} episodes x {args.episode_length} frames ({args.image_size}x{args.image_size}),"
        f" tiny random Qwen3-VL at {vlm}, device {args.device}, {args.dtype}, {args.threads} torch thread(s)"
    )
    runs = iter(range(10**6))

    # lerobot's script builds TOPRewardConfig(device, vlm_name) itself: give it our dtype the same way
    config_with_dtype = functools.partial(TOPRewardConfig, torch_dtype=args.dtype)
    reference_script.TOPRewardConfig = config_with_dtype
    built_model, built_encoder = TOPRewardModel, TOPRewardEncoderProcessorStep

    def lerobot(preloaded=None):
        output = WORK / f"lerobot_{next(runs)}.parquet"
        start = time.perf_counter(), time.process_time()
        if preloaded is not None:
            reference_script.TOPRewardModel = lambda config: preloaded[0]
            reference_script.TOPRewardEncoderProcessorStep = lambda **options: preloaded[1]
        try:
            reference_script.compute_topreward_progress(
                REPO_ID, vlm_name=vlm, output_path=str(output), device=args.device, num_samples=15
            )
        finally:
            reference_script.TOPRewardModel = built_model
            reference_script.TOPRewardEncoderProcessorStep = built_encoder
        seconds = time.perf_counter() - start[0], time.process_time() - start[1]
        return seconds, pq.read_table(output).column("progress_sparse").to_numpy()

    def ours(num_anchors, model=None):
        output = WORK / f"ours_{next(runs)}" / "progress.parquet"
        start = time.perf_counter(), time.process_time()
        if model is None:
            model = load_ours(num_anchors)
        label_to_parquet(model, vlm, open_dataset(root=root), output, stride=1, show_progress=False)
        seconds = time.perf_counter() - start[0], time.process_time() - start[1]
        episodes, _ = read_progress_parquet(output)
        progress = np.concatenate([episodes[e]["progress"] for e in sorted(episodes)])
        assert len(progress) == frames
        return seconds, progress

    def load_ours(num_anchors):
        return rewardkit.load(
            f"topreward:{vlm}", device=args.device, torch_dtype=args.dtype, num_anchors=num_anchors
        )

    config = config_with_dtype(vlm_name=vlm, device=args.device)
    lerobot_built = (
        TOPRewardModel(config).to(args.device).eval(),
        TOPRewardEncoderProcessorStep(
            vlm_name=vlm, image_key=config.image_key, max_frames=None, fps=config.fps
        ),
    )
    ours_built = {15: load_ours(15), None: load_ours(None)}
    pipelines = {
        "lerobot compute_topreward_progress, 15 anchors": (
            lambda: lerobot(),
            lambda: lerobot(lerobot_built),
        ),
        "rewardkit prefix cache, 15 anchors": (lambda: ours(15), lambda: ours(15, ours_built[15])),
        "rewardkit prefix cache, every frame": (lambda: ours(None), lambda: ours(None, ours_built[None])),
    }
    names = list(pipelines)
    print_vlm_tokens(ours_built[15], open_dataset(root=root).episodes(), args.image_size)
    # warm-up (untimed), and the outputs: ours at 15 anchors must label as lerobot does
    outputs = {name: pipelines[name][1]()[1] for name in names}
    gap = float(np.abs(outputs[names[0]] - outputs[names[1]]).max())
    print(f"max |progress lerobot - ours| at 15 anchors: {gap:.2e}")
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for mode, index in (("end to end", 0), ("compute only", 1)):
            for name in names:
                times.setdefault((mode, name), []).append(pipelines[name][index]()[0])

    for mode in ("end to end", "compute only"):
        wall = {name: statistics.median(t[0] for t in times[(mode, name)]) for name in names}
        cpu = {name: statistics.median(t[1] for t in times[(mode, name)]) for name in names}
        reference = wall[names[0]]
        checks = {names[1]: reference / wall[names[1]] >= 5, names[2]: wall[names[2]] <= 2 * reference}
        goals = {names[1]: ">= 5x faster", names[2]: "<= 2x the time"}
        print(f"\n{mode}, median of {args.repeats}:")
        print(
            f"{'':50s} {'wall s':>7s} {'frames/s':>8s} {'vs lerobot':>10s} {'cpu s':>6s} {'(cpu)':>6s}  target"
        )
        for name in names:
            target = "" if name not in checks else ("PASS " if checks[name] else "FAIL ") + goals[name]
            spread = ", ".join(f"{t[0]:.2f}" for t in times[(mode, name)])
            print(f"{name:50s} {wall[name]:7.2f} {frames / wall[name]:8.1f} {reference / wall[name]:9.2f}x"
                  f" {cpu[name]:6.2f} {cpu[names[0]] / cpu[name]:5.2f}x  {target}  [wall: {spread}]")  # fmt: skip


def print_vlm_tokens(model, episodes, image_size: int) -> None:
    """Tokens through the VLM's decoder per pipeline (the bound on the model-compute ratio): lerobot feeds
    header + the prefix's pairs + the prompt tail once per anchor; the cache feeds the header and every pair
    once, then per anchor the tail (and, for an odd prefix, its own padded pair)."""
    from rewardkit.models.topreward.modeling_topreward import anchor_lengths

    lerobot_tokens = cached_tokens = 0
    for episode in episodes:
        header, tail = model.prompt_pieces(episode.task)
        header_tokens = len(model._tokenizer(header)["input_ids"])
        tail_tokens = len(model._tokenizer(tail, add_special_tokens=False)["input_ids"])
        height, width = model.frame_size(image_size, image_size)
        per_pair = height * width // (model._patch * model._merge) ** 2
        lengths = anchor_lengths(episode.length, 15)
        pair = len(model._pair_ids(0, 1, per_pair))
        lerobot_tokens += sum(header_tokens + (n + 1) // 2 * pair + tail_tokens for n in lengths)
        cached_tokens += header_tokens + (episode.length + 1) // 2 * pair
        cached_tokens += sum(tail_tokens + (pair if n % 2 and n != lengths[-1] else 0) for n in lengths)
    print(
        f"VLM decoder tokens at 15 anchors: lerobot {lerobot_tokens}, prefix cache {cached_tokens} "
        f"({lerobot_tokens / cached_tokens:.1f}x fewer; the prompt tail is {tail_tokens} tokens, a frame pair "
        f"{pair})"
    )


if __name__ == "__main__":
    main()
