"""Per-step latency of `RewardMonitor` on CPU: causal SARM (frozen encoder on ONE new frame + transformers
over the cached window) and RewACT (reward path), side by side with the lerobot way of getting the same
number for one new observation.

Our causal SARM (sliding architecture) runs the new frame alone through each layer, attending to cached
layer inputs of earlier frames; the same model with lerobot's layer layout (`architecture="lerobot"`,
both transformers over the whole window each step) is timed beside it.

lerobot has no online reward monitor; for SARM the reference step is what its code does for one sample:
encode every frame of the window (n_obs_steps + 1 frames, its SARMEncodingProcessorStep) with the same
encoder, then `SARMRewardModel.calculate_rewards` on the window. For RewACT the reference is lerobot's ACT
`predict_action_chunk` on the same observation (the forward a lerobot rollout already runs per chunk).

Models are lerobot's default sizes (SARM: hidden 768, 8 layers, 12 heads, 8 observation steps 30 frames
apart; ACT/RewACT: resnet18 + dim 512), randomly initialised (no download); encoders are
`clip-random:tiny` and `clip-random:vit-b-32` (CLIP ViT-B/32's compute with random weights).

    .venv/bin/python benchmarks/bench_monitor.py [--steps 40] [--threads 2] [--skip-vit]

Targets (PASS/FAIL per configuration): SARM median step < 20 ms on CPU; the default-size SARM (118M
parameters, memory-bound: ~470 MB of fp32 weights read per step) < 33 ms (30 Hz control) on bf16 weights
(`RewardMonitor(model, dtype=torch.bfloat16)`), where the CPU has AMX-BF16 or AVX512-BF16: the benchmark
prints the CPU's bf16 flags and, without them, SKIPs the bf16 target with the reason (torch then emulates
bf16, slower than float32).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CAMERA = "observation.images.top"
TARGET_MS = 20.0
BF16_TARGET_MS = 33.0  # 30 Hz control, default-size SARM on bf16 weights
BF16_SIZE = "lerobot-default"
TASK = "push the block to the right"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def time_steps(step, observations, warmup: int) -> list[float]:
    """Milliseconds per call of step(observation) after `warmup` untimed calls."""
    for obs in observations[:warmup]:
        step(obs)
    out = []
    for obs in observations[warmup:]:
        start = time.perf_counter()
        step(obs)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def observations(count: int, size: int, state_dim: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            CAMERA: rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
            "observation.state": rng.normal(size=state_dim).astype(np.float32),
            "task": TASK,
        }
        for _ in range(count)
    ]


SARM_SIZES = {
    # lerobot's default SARM: 118M parameters, two 8-layer transformers of width 768.
    "lerobot-default": dict(hidden_dim=768, num_layers=8, num_heads=12),
    # a compact causal SARM for online use: 6.9M parameters.
    "compact": dict(hidden_dim=256, num_layers=4, num_heads=8),
}


def bench_sarm(
    encoder_spec: str,
    size: str,
    steps: int,
    warmup: int,
    image_size: int,
    reference: bool,
    bf16: bool = False,
) -> dict:
    from rewardkit.encoders import make_encoder
    from rewardkit.models.sarm import SARMConfig, SARMRewardModel
    from rewardkit.online import RewardMonitor

    encoder = make_encoder(encoder_spec)
    dim = encoder.feature_dim
    torch.manual_seed(0)
    config = SARMConfig(
        cameras=[CAMERA], encoder=encoder_spec, image_dim=dim, text_dim=dim, device="cpu", **SARM_SIZES[size]
    )
    model = SARMRewardModel(config).eval()
    monitor = RewardMonitor(model, fps=30, encoder=encoder)
    obs = observations(steps + warmup, image_size)
    ours = time_steps(monitor.step, obs, warmup)
    result = {"ours": ours}
    if bf16:  # the same model stepping on a bfloat16 copy of its weights (half the bytes read per step)
        low = RewardMonitor(model, fps=30, encoder=encoder, dtype=torch.bfloat16)
        result["ours_bf16"] = time_steps(low.step, obs, warmup)
    # the same causal SARM with lerobot's layer layout: both transformers over the whole window each step
    torch.manual_seed(0)
    windowed = SARMRewardModel(replace(config, architecture="lerobot", temporal_bands=None)).eval()
    result["ours_windowed"] = time_steps(RewardMonitor(windowed, fps=30, encoder=encoder).step, obs, warmup)
    # split of our step: the encoder on one frame vs the transformers over the cached window
    frame = obs[0][CAMERA][None]
    result["encode_one_frame"] = time_steps(
        lambda o: encoder.encode_images(frame), obs[: warmup + 10], warmup
    )
    if reference:
        from lerobot.rewards.sarm.configuration_sarm import SARMConfig
        from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel

        ref_config = SARMConfig(
            image_key=CAMERA, device="cpu", image_dim=dim, text_dim=dim, **SARM_SIZES[size]
        )
        torch.manual_seed(0)
        ref_model = SARMRewardModel(ref_config)
        ref_model.eval()
        window = config.n_obs_steps + 1
        text = encoder.encode_texts([TASK])[0]

        def reference_step(o):
            frames = np.repeat(o[CAMERA][None], window, axis=0)  # the window's frames, re-encoded each step
            video = encoder.encode_images(frames)
            state = torch.as_tensor(np.repeat(o["observation.state"][None], window, axis=0))
            ref_model.calculate_rewards(text, video, state)

        ref_steps = max(5, steps // 4)
        result["reference"] = time_steps(reference_step, obs[: warmup + ref_steps], warmup)
    return result


def bench_rewact(steps: int, warmup: int, image_size: int) -> dict:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    from rewardkit.models.rewact import RewACTConfig, RewACTPolicy
    from rewardkit.online import RewardMonitor

    features = dict(
        input_features={
            CAMERA: PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size)),
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
    )
    torch.manual_seed(0)
    policy = RewACTPolicy(RewACTConfig(pretrained_backbone_weights=None, device="cpu", **features)).eval()
    monitor = RewardMonitor(policy, fps=30)
    obs = observations(steps + warmup, image_size)
    result = {"ours": time_steps(monitor.step, obs, warmup)}
    torch.manual_seed(0)
    act = ACTPolicy(ACTConfig(pretrained_backbone_weights=None, device="cpu", **features)).eval()

    def reference_step(o):
        batch = {
            CAMERA: torch.from_numpy(o[CAMERA]).permute(2, 0, 1)[None].float() / 255,
            "observation.state": torch.from_numpy(o["observation.state"])[None],
        }
        with torch.no_grad():
            act.predict_action_chunk(batch)

    result["reference"] = time_steps(reference_step, obs, warmup)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more than free cores hurts)")
    parser.add_argument("--image-size", type=int, default=224, help="camera frame size (square)")
    parser.add_argument("--skip-vit", action="store_true", help="only the tiny encoder")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--bf16", action="store_true", help="time the bf16-weights step even on a CPU without native bf16"
    )
    parser.add_argument(
        "--sizes", default="compact,lerobot-default", help="SARM sizes: " + ",".join(SARM_SIZES)
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cpus, frames "
          f"{args.image_size}x{args.image_size}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    from rewardkit.precision import cpu_bf16_flags

    bf16_flags = cpu_bf16_flags()
    print(f"CPU bf16 flags: {bf16_flags or 'none (no amx_bf16 / avx512_bf16)'}")
    sizes = args.sizes.split(",")
    run_bf16 = bool(bf16_flags) or args.bf16
    rows, verdicts, skips = [], [], []
    if not bf16_flags:
        skips.append(
            f"SARM {BF16_SIZE} on bf16 weights < {BF16_TARGET_MS:.0f} ms: this CPU has no amx_bf16 / "
            "avx512_bf16 (torch emulates bf16, slower than float32)"
            + ("; timed anyway (--bf16)" if args.bf16 else "; not timed (--bf16 times it)")
        )
    elif BF16_SIZE not in sizes:
        skips.append(f"SARM {BF16_SIZE} on bf16 weights: size not in --sizes")
    encoders = ["clip-random:tiny"] + ([] if args.skip_vit else ["clip-random:vit-b-32"])
    for size in sizes:
        for spec in encoders:
            bf16 = run_bf16 and size == BF16_SIZE
            result = bench_sarm(
                spec, size, args.steps, args.warmup, args.image_size, not args.skip_reference, bf16
            )
            med, p95 = percentiles(result["ours"])
            enc_med, _ = percentiles(result["encode_one_frame"])
            line = f"SARM {size} + {spec}"
            rows.append((f"{line}: monitor.step", med, p95))
            rows.append(
                (f"{line}: of which encoder on 1 frame", enc_med, percentiles(result["encode_one_frame"])[1])
            )
            win_med, win_p95 = percentiles(result["ours_windowed"])
            rows.append((f"{line}: lerobot layout, whole window per step (ours)", win_med, win_p95))
            if "reference" in result:
                ref_med, ref_p95 = percentiles(result["reference"])
                rows.append((f"{line}: reference (re-encode window + lerobot SARM)", ref_med, ref_p95))
                rows.append((f"{line}: reference / ours (median)", ref_med / med, None))
            verdicts.append((f"{line}: median {med:.1f} ms < {TARGET_MS:.0f} ms", med < TARGET_MS))
            if "ours_bf16" in result:
                low_med, low_p95 = percentiles(result["ours_bf16"])
                rows.append((f"{line}: monitor.step on bf16 weights", low_med, low_p95))
                rows.append((f"{line}: fp32 / bf16 weights (median)", med / low_med, None))
                if bf16_flags:
                    verdicts.append(
                        (f"{line}: bf16 weights median {low_med:.1f} ms < {BF16_TARGET_MS:.0f} ms",
                         low_med < BF16_TARGET_MS)
                    )  # fmt: skip
    rewact = bench_rewact(args.steps, args.warmup, args.image_size)
    med, p95 = percentiles(rewact["ours"])
    ref_med, ref_p95 = percentiles(rewact["reference"])
    rows += [
        ("RewACT (resnet18, dim 512): monitor.step (reward path)", med, p95),
        ("ACT (lerobot) predict_action_chunk, same observation", ref_med, ref_p95),
        ("ACT chunk / RewACT monitor step (median)", ref_med / med, None),
    ]
    print("\n| measurement | median ms | p95 ms |\n|---|---|---|")
    for name, med_value, p95_value in rows:
        if p95_value is None:
            print(f"| {name} | ratio {med_value:.2f}x | |")
        else:
            print(f"| {name} | {med_value:.2f} | {p95_value:.2f} |")
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    for text in skips:
        print(f"SKIP  {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
