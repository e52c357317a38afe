"""TOPReward labelling: rewardkit's prefix cache vs lerobot 0.6.1's `compute_topreward_progress`, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_vlm_label.py [--setup realistic|byte --episodes 2
        --episode_length 60 --repeats 3]

One synthetic dataset (one camera "observation.images.top") and one tiny random Qwen3-VL
(tests/models/topreward/topreward_helpers.py: 2 text layers of width 32; the same folder for both) are
labelled by the two pipelines. The VLM is tiny but, with `--setup realistic` (the default), its token
proportions are a real Qwen3-VL's: a subword BPE puts TOPReward's prompt at ~40 tokens (Qwen's tokenizer:
about one per word), and the video processor has Qwen3-VL checkpoints' pixel budget, the one lerobot loads
with its default Qwen/Qwen3-VL-8B-Instruct (shortest_edge 4096, longest_edge 25165824 over t*h*w: frames
keep the dataset's resolution, rounded to multiples of 32, up to 384 frames of 256x256), on 256x256 frames
(LIBERO's, the dataset lerobot's script documents): 64 vision tokens per frame pair. `--setup byte` keeps
the tests' byte-level tokenizer (a ~190-token prompt) and 64x64 frames (4 vision tokens a pair), where the
prompt dwarfs the video and no cache can win much. The script prints the token counts and the cost model:
lerobot's decoder sees sum over anchors k of (video_k + prompt), the cache video once + 15 prompts (+ an odd
anchor's own pair); their ratio is the predicted compute ratio.

The pipelines:

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
decodes every frame through LeRobotDataset.__getitem__ and re-runs the processor on every prefix), and
attention (quadratic in length) weighs more than in an 8B model, whose linear layers dominate at these
lengths (there the decoder-token ratio is the closer prediction).
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

# The tiny VLM's token proportions. "realistic": a subword BPE (tests/models/vlm_helpers.subword_tokenizer:
# TOPReward's prompt is ~40 tokens, as under Qwen's tokenizer, against ~190 bytes), the video processor's pixel
# budget of Qwen3-VL checkpoints (what lerobot's default Qwen/Qwen3-VL-8B-Instruct loads: frames are kept at
# their size, here 256x256 as LIBERO's, so a frame pair is 8x8 = 64 vision tokens + its timestamp). "byte": the
# tests' byte-level tokenizer and 64x64 frames (4 vision tokens a pair): the prompt dwarfs the video.
SETUPS = {
    "realistic": {"tokenizer": "subword", "video_size": "qwen3_vl", "image_size": 256},
    "byte": {"tokenizer": "byte", "video_size": "test", "image_size": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--episode_length", type=int, default=60)
    parser.add_argument(
        "--setup",
        choices=sorted(SETUPS),
        default="realistic",
        help="the tiny VLM's token proportions: 'realistic' (subword tokenizer, Qwen3-VL's video pixel budget,"
        " 256x256 frames) or 'byte' (the tests' byte-level tokenizer, 64x64 frames)",
    )
    parser.add_argument("--image_size", type=int, default=None, help="frame size (default: the setup's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()
    setup = SETUPS[args.setup]
    image_size = args.image_size or setup["image_size"]

    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from lerobot.rewards.topreward import TOPRewardConfig, TOPRewardModel
    from lerobot.rewards.topreward import compute_rabc_weights as reference_script
    from lerobot.rewards.topreward.processor_topreward import TOPRewardEncoderProcessorStep
    from topreward_helpers import QWEN3_VL_VIDEO_SIZE, TEST_VIDEO_SIZE, make_tiny_topreward_vlm

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
        image_size=image_size,
    )
    video_size = {"qwen3_vl": QWEN3_VL_VIDEO_SIZE, "test": TEST_VIDEO_SIZE}[setup["video_size"]]
    vlm = str(make_tiny_topreward_vlm(WORK / "vlm", tokenizer=setup["tokenizer"], video_size=video_size))
    frames = args.episodes * args.episode_length
    print(
        f"setup '{args.setup}': dataset {args.episodes} episodes x {args.episode_length} frames"
        f" ({image_size}x{image_size}); tiny random Qwen3-VL at {vlm} with the {setup['tokenizer']} tokenizer"
        f" and video processor size {video_size}; device {args.device}, {args.dtype},"
        f" {args.threads} torch thread(s); load average {os.getloadavg()[0]:.2f}"
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
    print_vlm_tokens(ours_built[15], lerobot_built[1], open_dataset(root=root).episodes(), image_size)
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


def print_vlm_tokens(model, lerobot_encoder, episodes, image_size: int) -> None:
    """The cost model, from the tokens each pipeline puts through the VLM at 15 anchors: lerobot runs
    header + the prefix's frame pairs + the prompt tail once per anchor (sum over anchors k of video_k +
    prompt); the cache runs the header and every pair once, then per anchor the tail (and, for an odd anchor,
    its own padded pair). The vision tower sees the pairs in the same proportion. On a small model both
    ratios bound the compute-only speed-up; fixed costs (decoding, loading, the parquet) pull it lower.
    lerobot's own encoder step tokenizes the longest prefix: its length must equal the count here."""
    import torch

    from rewardkit.models.topreward.modeling_topreward import anchor_lengths

    height, width = model.frame_size(image_size, image_size)
    per_pair = height * width // (model._patch * model._merge) ** 2
    totals = dict.fromkeys(("lerobot", "cache", "every", "lerobot_pairs", "cache_pairs"), 0)
    for episode in episodes:
        header, tail = model.prompt_pieces(episode.task)
        header_tokens = len(model._tokenizer(header)["input_ids"])
        tail_tokens = len(model._tokenizer(tail, add_special_tokens=False)["input_ids"])
        length = episode.length

        def video(n: int) -> int:  # the tokens of the pairs of a prefix of n frames
            return sum(
                len(model._pair_ids(2 * g, min(2 * g + 1, n - 1), per_pair)) for g in range((n + 1) // 2)
            )

        def own_pair(
            n: int, length: int = length
        ) -> int:  # an odd prefix shorter than the episode brings its padded last pair
            return len(model._pair_ids(n - 1, n - 1, per_pair)) if n % 2 and n != length else 0

        anchors = anchor_lengths(length, 15).tolist()
        totals["lerobot"] += sum(header_tokens + video(n) + tail_tokens for n in anchors)
        totals["cache"] += header_tokens + video(length) + sum(tail_tokens + own_pair(n) for n in anchors)
        totals["every"] += (
            header_tokens + video(length) + sum(tail_tokens + own_pair(n) for n in range(1, length + 1))
        )
        totals["lerobot_pairs"] += sum((n + 1) // 2 for n in anchors)
        totals["cache_pairs"] += (length + 1) // 2 + sum(bool(own_pair(n)) for n in anchors)
        frames = torch.zeros(1, length, 3, image_size, image_size, dtype=torch.uint8)
        lerobot_ids = lerobot_encoder._encode_batch(frames, [episode.task], 1)["input_ids"].shape[-1]
        assert lerobot_ids == header_tokens + video(length) + tail_tokens, (
            lerobot_ids,
            header_tokens,
            tail_tokens,
        )
    pair = len(model._pair_ids(0, 1, per_pair))
    print(
        f"tokens: prompt {header_tokens + tail_tokens} ({header_tokens} before the video, {tail_tokens} after it;"
        f" last task '{episode.task}'); a frame pair {pair} ({per_pair} vision tokens at {height}x{width} +"
        f" timestamp and vision start/end); a {length}-frame episode's video {video(length)}"
    )
    print(
        f"decoder tokens at 15 anchors: lerobot {totals['lerobot']} (sum over anchors of video_k + prompt),"
        f" prefix cache {totals['cache']} (video once + 15 tails + odd anchors' own pairs)"
        f" -> predicted ratio {totals['lerobot'] / totals['cache']:.2f}x; every frame {totals['every']}"
        f" ({totals['every'] / totals['lerobot']:.2f}x lerobot's)"
    )
    print(
        f"vision-tower frame pairs at 15 anchors: lerobot {totals['lerobot_pairs']}, prefix cache"
        f" {totals['cache_pairs']} -> {totals['lerobot_pairs'] / totals['cache_pairs']:.2f}x"
    )


if __name__ == "__main__":
    main()
