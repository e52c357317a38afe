"""RewACT vs lerobot's ACT, side by side in one run (CPU, default ACT sizes, random tensors).

Measures, alternating ACT and RewACT calls so that machine load affects both alike (medians):
- training step (forward + backward + AdamW step), batch 8, 96x96 images: target <= 1.05x ACT;
- `select_action` when it predicts a chunk (empty queue), batch 1: target <= 1.05x ACT;
- a queued step with `reward_refresh="every_step"` (fresh reward for the latest observation: backbone,
  encoder and decoder query 0 only): target <= 1x one ACT forward (a chunk-predicting select_action);
  also shown: the same reward through the full 100-query decoder, for comparison;
- a queued step with `reward_refresh="on_refill"` vs ACT's queued step (no model call for either).

Usage: .venv/bin/python benchmarks/bench_rewact.py [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy

from rewardkit.models.rewact import RewACTConfig, RewACTPolicy

CAMERA = "observation.images.top"
STATE_DIM, ACTION_DIM, IMAGE = 6, 6, 96


def features(config: ACTConfig) -> ACTConfig:
    config.input_features = {
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,)),
        CAMERA: PolicyFeature(type=FeatureType.VISUAL, shape=(3, IMAGE, IMAGE)),
    }
    config.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    return config


def observation(batch_size: int) -> dict[str, torch.Tensor]:
    return {
        "observation.state": torch.randn(batch_size, STATE_DIM),
        CAMERA: torch.randn(batch_size, 3, IMAGE, IMAGE),
    }


def training_batch(batch_size: int, chunk: int) -> dict[str, torch.Tensor]:
    return {
        **observation(batch_size),
        "action": torch.randn(batch_size, chunk, ACTION_DIM),
        "action_is_pad": torch.zeros(batch_size, chunk, dtype=torch.bool),
        "index": torch.randint(0, 1000, (batch_size,)),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(act_fn, rewact_fn, reps: int, warmup: int = 1) -> tuple[float, float]:
    """Median seconds of each, calls alternating (ACT first, then RewACT, then the reverse order)."""
    for _ in range(warmup):
        act_fn()
        rewact_fn()
    act, rewact = [], []
    for i in range(reps):
        if i % 2 == 0:
            act.append(timed(act_fn))
            rewact.append(timed(rewact_fn))
        else:
            rewact.append(timed(rewact_fn))
            act.append(timed(act_fn))
    return statistics.median(act), statistics.median(rewact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    common = dict(pretrained_backbone_weights=None, device="cpu")  # same compute, no download
    act = ACTPolicy(features(ACTConfig(**common)))
    rewact = RewACTPolicy(features(RewACTConfig(**common)))
    rewact.set_progress_targets(torch.rand(1000))
    chunk = act.config.chunk_size
    print(
        f"ACT vs RewACT, default sizes (dim {act.config.dim_model}, chunk {chunk}, VAE on), CPU "
        f"{torch.get_num_threads()} threads, {IMAGE}x{IMAGE} images"
    )
    rows = []

    # Training step, batch 8.
    batch = training_batch(8, chunk)
    optimizers = {
        id(policy): torch.optim.AdamW(policy.get_optim_params(), lr=1e-5) for policy in (act, rewact)
    }

    def train_step(policy):
        policy.train()
        loss, _ = policy.forward(batch)
        optimizers[id(policy)].zero_grad()
        loss.backward()
        optimizers[id(policy)].step()

    t_act, t_rew = side_by_side(lambda: train_step(act), lambda: train_step(rewact), args.reps)
    rows.append(("training step, batch 8", t_act, t_rew, t_rew / t_act, 1.05))

    # Chunk-predicting select_action (empty queue), batch 1.
    obs = observation(1)

    def chunk_call(policy):
        policy.reset()
        policy.select_action(obs)

    act.eval()
    rewact.eval()
    t_act_chunk, t_rew_chunk = side_by_side(
        lambda: chunk_call(act), lambda: chunk_call(rewact), reps=args.reps * 6, warmup=2
    )
    rows.append(
        ("select_action, predicts a chunk", t_act_chunk, t_rew_chunk, t_rew_chunk / t_act_chunk, 1.05)
    )

    # Queued step, fresh reward (every_step) vs one ACT forward.
    def queued_call(policy, refresh):
        if len(policy._action_queue) < 2:
            policy.reset()
            policy.select_action(obs)  # refill outside the timed call
        if refresh is not None:
            policy.config.reward_refresh = refresh
        return timed(lambda: policy.select_action(obs))

    fresh = [queued_call(rewact, "every_step") for _ in range(args.reps * 6)]
    t_fresh = statistics.median(fresh)
    rows.append(("queued step, fresh reward (every_step)", t_act_chunk, t_fresh, t_fresh / t_act_chunk, 1.0))
    with torch.no_grad():
        full = [timed(lambda: rewact._run(obs, reward_only=False)) for _ in range(args.reps * 6)]
    t_full = statistics.median(full)
    rows.append(("  (same reward via the full decoder)", t_act_chunk, t_full, t_full / t_act_chunk, None))

    # Queued step without a model call: ACT's vs RewACT on_refill.
    act_queued = [queued_call(act, None) for _ in range(args.reps * 20)]
    refill = [queued_call(rewact, "on_refill") for _ in range(args.reps * 20)]
    t_act_q, t_refill = statistics.median(act_queued), statistics.median(refill)
    rows.append(("queued step, on_refill", t_act_q, t_refill, t_refill / t_act_q, None))

    print(f"{'measurement':40s} {'ACT':>10s} {'RewACT':>10s} {'ratio':>7s} {'target':>7s}  result")
    for name, base, ours, ratio, target in rows:
        verdict = "" if target is None else ("PASS" if ratio <= target else "FAIL")
        target_text = "" if target is None else f"<={target:.2f}"
        print(f"{name:40s} {fmt(base):>10s} {fmt(ours):>10s} {ratio:6.2f}x {target_text:>7s}  {verdict}")
    print(
        "(ACT column of the queued fresh-reward rows: one ACT forward = ACT's chunk-predicting select_action)"
    )


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
