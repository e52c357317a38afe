"""Whole-dataset labelling: rewardkit vs lerobot 0.6.1's `compute_rabc_weights`, side by side in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_label.py [--episodes 2 --episode_length 20]

One synthetic dataset (one camera, 96x96 video) is labelled at stride 1 by:

- the reference: `lerobot.rewards.sarm.compute_rabc_weights.compute_sarm_progress` (the function behind
  `python -m lerobot.rewards.sarm.compute_rabc_weights`) with a randomly initialised lerobot SARM of the
  default configuration (hidden 768, 8 layers, 12 heads, n_obs_steps 8, frame gap 30) and CLIP ViT-B/32
  with random weights injected in place of openai/clip-vit-base-patch32 (same compute; no download);
- ours, `rewardkit.labelling.label_to_parquet` from an empty feature cache (decode + encode every frame
  once, then the model over all windows, then the parquet), with the same random CLIP
  (`clip-random:vit-b-32`), for
  (a) our SARM, default configuration, causal window (sliding architecture: one pass per frame-gap
      phase labels every frame), fp32;
  (b) the same in bf16: encoder in bf16, model on a bfloat16 copy of its weights (no autocast, which
      re-casts the weights at every op; the autocast model pass is timed beside it for comparison);
  (c) the reference's own lerobot SARM checkpoint opened by `rewardkit.load` (centred window), fp32.

For each of ours, "at the limit" compares the labelling time with the sum of its parts timed alone: the
encoder over every frame (frames already decoded in memory) + the model's `label_episode` over every
window (features already in memory); each of ours is the best of `--repeats` runs. Targets (PASS/FAIL printed):
  at the limit <= 1.15x; causal fp32 >= 10x the reference's frames/s; causal bf16 >= 25x;
  lerobot checkpoint >= 4x; the model pass on bf16 weights >= 2x faster than fp32 (where the CPU has
  AMX-BF16 or AVX512-BF16: the CPU's bf16 flags are printed, and without them the bf16 targets SKIP with the
  reason; `--bf16` times the bf16 run anyway, without its targets). The lerobot checkpoint's progress is also compared with the reference's
  parquet (max |difference|; both read the same frames with the same CLIP and SARM weights).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

WORK = Path(tempfile.mkdtemp(prefix="bench_label_"))
# lerobot's labelling script finds datasets by repo id under HF_LEROBOT_HOME: set it before importing lerobot.
os.environ["HF_LEROBOT_HOME"] = str(WORK / "lerobot_home")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CAMERA = "observation.images.top"
REPO_ID = "rewardkit/bench_label"
ENCODER = "clip-random:vit-b-32"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--episode_length", type=int, default=20)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--skip_reference", action="store_true", help="ours only (no ratios)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of ours: the best of this many runs")
    parser.add_argument("--skip_bf16", action="store_true",
                        help="no bf16 run (bf16 is emulated, and slow, on CPUs without AMX/AVX512-BF16)")  # fmt: skip
    parser.add_argument("--bf16", action="store_true",
                        help="time the bf16 run even on a CPU without native bf16 (its targets still SKIP)")  # fmt: skip
    args = parser.parse_args()

    from rewardkit.data.dataset import open_dataset
    from rewardkit.data.synthetic import make_synthetic_dataset

    root = Path(os.environ["HF_LEROBOT_HOME"]) / REPO_ID
    started = time.perf_counter()
    make_synthetic_dataset(
        root, repo_id=REPO_ID, num_episodes=args.episodes, episode_length=args.episode_length,
        image_size=args.image_size,
    )  # fmt: skip
    dataset = open_dataset(repo_id=REPO_ID, root=root)
    frames_total = sum(ep.length for ep in dataset.episodes())
    print(f"dataset: {args.episodes} episodes x {args.episode_length} frames = {frames_total} frames, "
          f"{args.image_size}x{args.image_size}, made in {time.perf_counter() - started:.1f} s")  # fmt: skip
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip

    checkpoint = save_reference_checkpoint(WORK / "lerobot_sarm")

    reference = None
    if not args.skip_reference:
        reference = run_reference(checkpoint, WORK / "reference.parquet")
        print("\n== reference: lerobot compute_sarm_progress (SARM default config, random CLIP ViT-B/32) ==")
        print(f"labelled {frames_total} frames in {reference['seconds']:.1f} s: "
              f"{frames_total / reference['seconds']:.2f} frames/s "
              f"({reference['seconds'] / frames_total:.3f} s per frame)")  # fmt: skip

    results = {}
    try:
        from rewardkit.models.sarm import SARMConfig, SARMRewardModel
    except ImportError as e:  # the SARM model is written by another issue
        print(f"\nrewardkit SARM not available ({e}); only the reference was measured")
        return
    import rewardkit

    torch.manual_seed(0)
    causal = SARMRewardModel(SARMConfig(encoder=ENCODER, cameras=[CAMERA], device="cpu")).eval()
    lerobot_model = rewardkit.load(checkpoint).eval()
    lerobot_model.config.encoder = ENCODER  # the same random CLIP the reference was given
    runs = [
        ("causal SARM fp32", causal, torch.float32),
        ("causal SARM bf16", causal, torch.bfloat16),
        ("lerobot SARM checkpoint (centred) fp32", lerobot_model, torch.float32),
    ]
    from rewardkit.precision import cpu_bf16_flags

    bf16_flags = cpu_bf16_flags()
    print(f"CPU bf16 flags: {bf16_flags or 'none (no amx_bf16 / avx512_bf16)'}")
    if not bf16_flags:
        print(
            "SKIP  bf16 targets (model pass in bf16 >= 2x fp32, bf16 speed-up): bf16 is emulated on this CPU"
        )
    if args.skip_bf16 or not (bf16_flags or args.bf16):
        runs = [run for run in runs if run[2] != torch.bfloat16]
    for name, model, dtype in runs:
        results[name] = run_ours(model, dataset, dtype, WORK / f"ours_{len(results)}", args.repeats)
        r = results[name]
        print(f"\n== ours: {name} ==")
        print(
            f"labelling (empty cache -> parquet): {r['total_s']:7.2f} s  {frames_total / r['total_s']:8.1f} frames/s"
        )
        print(f"  encoder alone, every frame:       {r['encoder_s']:7.2f} s")
        print(f"  model alone, every window:        {r['model_s']:7.2f} s")
        if "model_autocast_s" in r:
            print(f"  model under autocast instead:     {r['model_autocast_s']:7.2f} s")
        print(
            f"  at the limit: labelling / (encoder + model) = {r['total_s'] / (r['encoder_s'] + r['model_s']):.3f}"
        )

    print("\n== targets ==")
    verdicts = []

    def verdict(label: str, value: float, ok: bool, target: str) -> None:
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value:.2f} (target {target})")

    for name, r in results.items():
        if name.endswith("bf16") and not bf16_flags:
            continue  # timed with --bf16 on emulated bf16: no targets
        limit = r["total_s"] / (r["encoder_s"] + r["model_s"])
        verdict(f"at the limit, {name}", limit, limit <= 1.15, "<= 1.15x")
    if reference is not None:
        reference_fps = frames_total / reference["seconds"]
        goals = {"causal SARM fp32": 10, "causal SARM bf16": 25, "lerobot SARM checkpoint (centred) fp32": 4}
        for name, goal in goals.items():
            if name not in results or (name.endswith("bf16") and not bf16_flags):
                continue
            speedup = frames_total / results[name]["total_s"] / reference_fps
            verdict(f"speed-up vs reference, {name}", speedup, speedup >= goal, f">= {goal}x")
    if "causal SARM bf16" in results and bf16_flags:
        ratio = results["causal SARM fp32"]["model_s"] / results["causal SARM bf16"]["model_s"]
        verdict("model pass on bf16 weights, speed-up over fp32", ratio, ratio >= 2, ">= 2x")
    if reference is not None:
        ours = results["lerobot SARM checkpoint (centred) fp32"]["progress"]
        difference = float(np.abs(ours - reference["progress"]).max())
        ok = difference <= 1e-3
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  lerobot checkpoint, max |our progress - lerobot's| over every frame: "
              f"{difference:.2e} (target <= 1e-3; same weights, frames, processor and state stats)")  # fmt: skip
    print(f"\n{sum(verdicts)}/{len(verdicts)} targets met")


# ---- the reference -----------------------------------------------------------------------------
def save_reference_checkpoint(path: Path) -> Path:
    """A randomly initialised lerobot SARM of the default configuration, saved as a lerobot checkpoint."""
    from lerobot.rewards.sarm.configuration_sarm import SARMConfig
    from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel

    torch.manual_seed(0)
    model = SARMRewardModel(SARMConfig(device="cpu", image_key=CAMERA))
    model.save_pretrained(path)
    return path


def _random_clip_patches():
    """lerobot loads openai/clip-vit-base-patch32 from the hub; hand it CLIP ViT-B/32 with random weights."""
    from lerobot.rewards.sarm import processor_sarm
    from transformers import CLIPImageProcessorFast

    from rewardkit.encoders import make_encoder

    random_clip = make_encoder(ENCODER)

    class OfflineProcessor:
        """CLIPProcessor stand-in: CLIP's own image processor + a vocabulary-free tokenizer."""

        def __init__(self) -> None:
            self.image_processor = CLIPImageProcessorFast()
            hash_tokenizer = random_clip.tokenizer
            self.tokenizer = lambda texts, return_tensors="pt", padding=True, truncation=True: hash_tokenizer(
                texts
            )

        def __call__(self, images, return_tensors="pt"):
            return self.image_processor(images=images, return_tensors=return_tensors)

    return (
        mock.patch.object(processor_sarm, "CLIPModel", SimpleNamespace(from_pretrained=lambda *a, **k: random_clip.model)),
        mock.patch.object(processor_sarm, "CLIPProcessor", SimpleNamespace(from_pretrained=lambda *a, **k: OfflineProcessor())),
    )  # fmt: skip


def run_reference(checkpoint: Path, output: Path) -> dict:
    """Time lerobot's compute_sarm_progress end to end; return its seconds and per-frame progress."""
    import pyarrow.parquet as pq
    from lerobot.rewards.sarm.compute_rabc_weights import compute_sarm_progress

    patch_model, patch_processor = _random_clip_patches()
    with patch_model, patch_processor:
        started = time.perf_counter()
        compute_sarm_progress(
            dataset_repo_id=REPO_ID, reward_model_path=str(checkpoint), output_path=str(output),
            head_mode="sparse", device="cpu", num_visualizations=0, stride=1,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    table = pq.read_table(output)
    return {"seconds": seconds, "progress": table.column("progress_sparse").to_numpy()}


# ---- ours --------------------------------------------------------------------------------------
def run_ours(model, dataset, dtype: torch.dtype, work: Path, repeats: int) -> dict:
    """Label from an empty cache (timed end to end), then time the encoder and the model alone; each the
    best of `repeats` runs (this machine is noisy; the sum of parts and the whole are timed alike)."""
    import contextlib

    import pyarrow.parquet as pq

    from rewardkit.cache import FeatureCache
    from rewardkit.encoders import make_encoder
    from rewardkit.labelling import episode_inputs, label_to_parquet

    # built before timing, as the model is loaded before timing: labelling is timed from an empty cache
    encoder = make_encoder(ENCODER, dtype=dtype)
    autocast_model = model
    if dtype != torch.float32:
        from rewardkit.precision import low_precision_copy

        # a bf16 copy of the weights, made once (as a bf16 deployment would load them); label_to_parquet's
        # autocast then finds its operands already in bf16 and casts nothing
        model = low_precision_copy(model, dtype).eval()
    # warm-up on one episode (thread pools, first-call allocations), in a throwaway cache
    warm_dataset = type(dataset)(meta=dataset.meta, root=dataset.root, repo_id=dataset.repo_id,
                                 selected_episodes=[dataset.episode_indices[0]])  # fmt: skip
    label_to_parquet(model, "bench", warm_dataset, work / "warm.parquet", show_progress=False, dtype=dtype,
                     cache_dir=work / "warm_cache", encoder=encoder)  # fmt: skip

    totals = []
    for repeat in range(repeats):
        cache_dir = work / f"cache_{repeat}"  # empty each time
        output = work / "progress.parquet"
        started = time.perf_counter()
        label_to_parquet(model, "bench", dataset, output, show_progress=False, dtype=dtype, cache_dir=cache_dir,
                         encoder=encoder)  # fmt: skip
        totals.append(time.perf_counter() - started)

    # the encoder alone, on frames already decoded
    frames = np.concatenate([dataset.read_frames(ep.episode_index, CAMERA) for ep in dataset.episodes()])
    encoder_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(frames), 64):
            encoder.encode_images(frames[i : i + 64])
        encoder_times.append(time.perf_counter() - started)

    # the model alone over every window, features already in memory
    needs = model.required_inputs()
    cache = FeatureCache.for_dataset(dataset, ENCODER, [CAMERA], cache_dir=cache_dir)
    inputs = [episode_inputs(dataset, needs, ep, cache) for ep in dataset.episodes()]
    for item in inputs:
        item.image_features = {k: np.asarray(v, dtype=np.float32) for k, v in item.image_features.items()}

    def model_pass(labeller, context) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            with context:
                for item in inputs:
                    labeller.label_episode(item)
            times.append(time.perf_counter() - started)
        return min(times)

    result = {"total_s": min(totals), "encoder_s": min(encoder_times),
              "model_s": model_pass(model, contextlib.nullcontext())}  # fmt: skip
    if dtype != torch.float32:  # the float32 weights under autocast, for comparison
        result["model_autocast_s"] = model_pass(autocast_model, torch.autocast("cpu", dtype=dtype))
    result["progress"] = pq.read_table(output).column("progress_sparse").to_numpy()
    return result


if __name__ == "__main__":
    main()
