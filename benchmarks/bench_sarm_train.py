"""SARM training speed: rewardkit (feature cache) vs lerobot 0.6.1's SARM, side by side in one run.

Same synthetic dataset, same model configuration, batch size 8, fp32, on this machine. lerobot's CLIP is
a randomly initialised CLIP ViT-B/32 (weights cannot be downloaded here): the benchmark injects it into
lerobot's processor in place of `from_pretrained` (identical compute). Measured per configuration
(default: hidden 768, 8 layers; small: hidden 256, 2 layers):

- reference step: fetch 8 samples from lerobot's dataset (13 decoded frames each), run its processor
  (CLIP on every frame, targets), model forward + backward + AdamW;
- reference model-only: the same forward + backward + AdamW on an already processed batch;
- ours step: gather a batch from the memory-mapped cache + forward + backward + AdamW (the trainer's step);
- ours model-only: the trainer's step on one prepared batch (no gathering);
- ours bf16 (default config): accelerate bf16 autocast + foreach AdamW.
- model step, side by side: ours model-only (each `--frame-tokens` layout) and reference model-only
  alternated `--rounds` times per configuration (medians; the machine is shared and noisy), target ours
  <= 0.5x reference, fp32.
Also: cache build time, validation loss after the same steps in fp32 and bf16 (small config, fixture data),
peak memory. Warm-up steps are excluded from the timings.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_sarm_train.py            # ~5 min on 2 CPU cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_sarm_train.py --steps 2  # quicker, noisier
    ... --frame-tokens fused separate   # our sliding SARM's frame layouts to time (default: both)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CAMERA = "observation.images.top"
BATCH = 8
CONFIGS = {
    "default": dict(hidden_dim=768, num_layers=8, num_heads=12),
    "small": dict(hidden_dim=256, num_layers=2, num_heads=8),
}


class Results(dict):
    """Measurements, each also printed as soon as it is taken (a crash later keeps what was measured)."""

    def __setitem__(self, key: str, value) -> None:
        print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}", flush=True)
        super().__setitem__(key, value)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, steps: int, warmup: int = 1) -> float:
    """Mean seconds per call of fn(step) over `steps` calls after `warmup` calls."""
    for i in range(warmup):
        fn(i)
    start = time.perf_counter()
    for i in range(steps):
        fn(warmup + i)
    return (time.perf_counter() - start) / steps


# ---- ours ------------------------------------------------------------------------------------------
def ours(root: Path, cache_dir: Path, out: Path, steps: int, results: dict) -> None:
    from rewardkit.cache import BuildStats, build_cache
    from rewardkit.data.dataset import DatasetConfig, open_dataset
    from rewardkit.encoders import make_encoder
    from rewardkit.models.sarm.data import perturbation_texts
    from rewardkit.training import Trainer
    from rewardkit.training.sarm import SARMTrainConfig, prepare

    dataset = open_dataset(root=root)
    encoder = make_encoder("clip-random:vit-b-32")
    stats = BuildStats()
    start = time.perf_counter()
    build_cache(
        dataset,
        encoder,
        [CAMERA],
        cache_dir=cache_dir,
        progress=False,
        stats=stats,
        texts=perturbation_texts(64, seed=1000, exclude=[e.task for e in dataset.episodes()]),
    )
    results["cache build s"] = time.perf_counter() - start
    results["cache frames"] = stats.frames
    del encoder

    def trainer_for(
        name: str,
        precision: str = "no",
        impl: str = "auto",
        seed: int = 1000,
        frame_tokens: str | None = None,
    ) -> Trainer:
        cfg = SARMTrainConfig(
            dataset=DatasetConfig(root=str(root)),
            output_dir=str(out / name),
            cache_dir=str(cache_dir),
            batch_size=BATCH,
            steps=10_000,
            progress_bar=False,
            mixed_precision=precision,
            optimizer_impl=impl,
            seed=seed,
            val_fraction=0.25,
        )
        for key, value in CONFIGS[name.split("-")[0]].items():
            setattr(cfg.model, key, value)
        cfg.model.encoder = "clip-random:vit-b-32"
        cfg.model.frame_tokens = frame_tokens
        torch.manual_seed(seed)
        model, train_data, val_data = prepare(cfg)
        return Trainer(model, train_data, cfg, cfg.output_dir, val_data)

    def measure(name: str, trainer: Trainer, model_only: bool = True) -> None:
        results[f"ours {name} step s"] = timed(lambda s: trainer.train_step(trainer.next_batch(s)), steps)
        if model_only:
            batch = trainer.next_batch(0)
            results[f"ours {name} model-only s"] = timed(lambda s: trainer.train_step(batch), steps)
            results[f"ours {name} gather s"] = timed(trainer.next_batch, steps * 5)
            model_steps[f"ours {name}"] = lambda: trainer.train_step(batch)

    for name in CONFIGS:
        for layout in args_global.frame_tokens:
            measure(f"{name} {layout}", trainer_for(name, frame_tokens=layout))
    if not args_global.no_bf16_default:
        measure("default bf16", trainer_for("default-bf16", "bf16", "foreach"), model_only=False)
    results["ours peak RSS MB"] = peak_rss_mb()

    # Validation loss after the same steps, fp32 vs bf16 (small config; same data order and seeds).
    for precision in ("no", "bf16"):
        trainer = trainer_for("small-val", precision, "foreach" if precision == "bf16" else "auto")
        for s in range(args_global.val_steps):
            trainer.train_step(trainer.next_batch(s))
        results[f"val loss {precision}"] = trainer.evaluate()["val_loss"]
        del trainer


# ---- lerobot's SARM ------------------------------------------------------------------------------
def reference(root: Path, steps: int, results: dict) -> None:
    from lerobot.rewards.sarm import processor_sarm
    from transformers import CLIPImageProcessor

    from rewardkit.encoders import make_encoder

    clip = make_encoder("clip-random:vit-b-32")  # the same random ViT-B/32 as our cache used

    class _Processor:
        """CLIPProcessor stand-in: transformers' CLIP image processor + a vocabulary-free tokenizer."""

        def __init__(self) -> None:
            self.image_processor = CLIPImageProcessor()

        def __call__(self, images, return_tensors="pt"):
            return self.image_processor(images=images, return_tensors=return_tensors)

        def tokenizer(self, texts, return_tensors="pt", padding=True, truncation=True):
            return clip.tokenizer(texts)

    processor_sarm.CLIPModel.from_pretrained = classmethod(lambda cls, *a, **k: clip.model)
    processor_sarm.CLIPProcessor.from_pretrained = classmethod(lambda cls, *a, **k: _Processor())
    for name, overrides in CONFIGS.items():
        reference_config(name, overrides, root, steps, results, processor_sarm)
    results["reference peak RSS MB (max of both)"] = peak_rss_mb()


def reference_config(
    name: str, overrides: dict, root: Path, steps: int, results: dict, processor_sarm
) -> None:
    """Time lerobot's SARM (dataset + processor + model) and its model alone for one configuration."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.rewards.sarm.configuration_sarm import SARMConfig
    from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel
    from torch.utils.data import default_collate

    config = SARMConfig(image_key=CAMERA, device="cpu", **overrides)
    meta_ds = LeRobotDataset("bench/sarm", root=root)
    fps = meta_ds.fps
    deltas = [d / fps for d in config.observation_delta_indices]
    dataset = LeRobotDataset(
        "bench/sarm", root=root, delta_timestamps={CAMERA: deltas, "observation.state": deltas}
    )
    torch.manual_seed(0)
    model = SARMRewardModel(config, dataset_stats=dataset.meta.stats, dataset_meta=dataset.meta)
    pre, _ = processor_sarm.make_sarm_pre_post_processors(config, dataset.meta.stats, dataset.meta)
    preset = config.get_optimizer_preset()
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    rng = np.random.default_rng(0)
    model.train()

    def model_step(processed):
        loss, _ = model.forward(processed)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad()

    holder = {}

    def full_step(_):
        indices = rng.integers(0, len(dataset), BATCH)
        batch = default_collate([dataset[int(i)] for i in indices])
        processed = pre(batch)
        holder["batch"] = processed
        model_step(processed)

    results[f"reference {name} step s"] = timed(full_step, steps)
    processed = holder["batch"]
    results[f"reference {name} model-only s"] = timed(lambda s: model_step(processed), steps)
    model_steps[f"reference {name}"] = lambda: model_step(processed)


# ---- model step, side by side ---------------------------------------------------------------------
def side_by_side(rounds: int, results: dict) -> None:
    """Ours (each frame layout) and the reference's model-only steps alternated `rounds` times per
    configuration (after one warm-up each): the median of each, taken under the same load."""
    for name in CONFIGS:
        pair = {f"ours {layout}": model_steps[f"ours {name} {layout}"] for layout in args_global.frame_tokens}
        pair["reference"] = model_steps[f"reference {name}"]
        times: dict[str, list[float]] = {who: [] for who in pair}
        for step in pair.values():
            step()
        for _ in range(rounds):
            for who, step in pair.items():
                start = time.perf_counter()
                step()
                times[who].append(time.perf_counter() - start)
        for who, values in times.items():
            results[f"side by side {name}: {who} model-only median s"] = float(np.median(values))


def report(results: dict) -> int:
    print("\n| measurement | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    checks = []
    layouts = args_global.frame_tokens
    for name in CONFIGS:
        for layout in layouts:
            ours_name = f"{name} {layout}"
            ratio_model = results[f"ours {ours_name} step s"] / results[f"ours {ours_name} model-only s"]
            checks.append((f"{ours_name}: ours step / model-only <= 1.1", ratio_model, ratio_model <= 1.1))
            speed = results[f"reference {name} step s"] / results[f"ours {ours_name} step s"]
            target = 3 if name == "default" else 30
            checks.append(
                (f"{ours_name}: ours fp32 vs reference samples/s >= {target}x", speed, speed >= target)
            )
    for name in CONFIGS:
        key = f"side by side {name}: %s model-only median s"
        for layout in layouts:
            if key % f"ours {layout}" in results:
                ratio = results[key % f"ours {layout}"] / results[key % "reference"]
                checks.append(
                    (
                        f"{name} {layout}: ours model-only / reference model-only <= 0.5 (fp32)",
                        ratio,
                        ratio <= 0.5,
                    )
                )
    from rewardkit.precision import cpu_bf16_flags

    bf16_flags = cpu_bf16_flags()
    print(f"\nCPU bf16 flags: {bf16_flags or 'none (no amx_bf16 / avx512_bf16)'}")
    if not bf16_flags:
        print("SKIP  bf16 targets (bf16 step >= 2x fp32, bf16 vs reference): bf16 is emulated on this CPU")
    if "ours default bf16 step s" in results and bf16_flags:
        bf16 = results["reference default step s"] / results["ours default bf16 step s"]
        checks.append(("default: ours bf16 vs reference fp32 >= 6x", bf16, bf16 >= 6))
    drift = abs(results["val loss bf16"] - results["val loss no"]) / results["val loss no"]
    checks.append(("val loss bf16 within 2% of fp32", drift, drift <= 0.02))
    cache_vs_epoch = results["cache build s"] / (
        results["reference default step s"] * results["cache frames"] / BATCH
    )
    checks.append(("cache build < one reference epoch (ratio)", cache_vs_epoch, cache_vs_epoch < 1))
    print("\n| target | measured | result |\n|---|---|---|")
    for label, value, ok in checks:
        print(f"| {label} | {value:.3g} | {'PASS' if ok else 'FAIL'} |")
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, batch {BATCH}, fp32 unless noted")
    return 0


def main() -> int:
    global args_global
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after 1 warm-up)")
    parser.add_argument(
        "--val-steps", type=int, default=30, help="training steps before the fp32/bf16 val loss"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating model-only rounds per configuration (0: none)"
    )
    parser.add_argument(
        "--frame-tokens",
        nargs="+",
        choices=["fused", "separate"],
        default=["fused", "separate"],
        help="our sliding SARM's frame layouts to time (one token per frame, or one per camera/text/state)",
    )
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--episode-length", type=int, default=90)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); on a "
        "shared, overloaded CPU 1 avoids threads spinning against each other",
    )
    parser.add_argument(
        "--no-bf16-default",
        action="store_true",
        help="skip the bf16 default-config timing (slow on CPUs without native bf16)",
    )
    args_global = parser.parse_args()
    if args_global.threads:
        torch.set_num_threads(args_global.threads)
    from rewardkit.data.synthetic import make_synthetic_dataset

    results = Results()
    with tempfile.TemporaryDirectory(prefix="bench_sarm_") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "ds"
        make_synthetic_dataset(
            root,
            repo_id="bench/sarm",
            num_episodes=args_global.episodes,
            episode_length=args_global.episode_length,
            fps=30,
            image_size=64,
        )
        start = time.perf_counter()
        ours(root, tmp_path / "cache", tmp_path / "out", args_global.steps, results)
        print(f"ours done in {time.perf_counter() - start:.0f}s", file=sys.stderr)
        start = time.perf_counter()
        reference(root, args_global.steps, results)
        print(f"reference done in {time.perf_counter() - start:.0f}s", file=sys.stderr)
        if args_global.rounds:
            side_by_side(args_global.rounds, results)
    return report(results)


args_global: argparse.Namespace
# "ours <config>" / "reference <config>" -> one model-only training step on a prepared batch
model_steps: dict = {}

if __name__ == "__main__":
    sys.exit(main())
