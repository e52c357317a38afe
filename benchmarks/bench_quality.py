"""Quality on failures the model never saw: rewardkit's SARM vs lerobot 0.6.1's SARM and two baselines.

Issue 15's benchmark. Datasets come from `rewardkit sim` (metaworld push-v3 and pick-place-v3 scripted
experts, fixed seeds), generated here into `--work_dir` and reused by later runs (never committed):
  - `full` state (hand, gripper opening, object and goal positions): successes and the state-visible
    failure kinds (drop, stall, action_noise);
  - `proprio` state (hand and gripper command only): successes and the vision-only failure kinds
    (grasp_air: closes on air beside the object and carries on; place_beside: holds it beside the goal),
    which only the images show; filmed by the corner camera and a wrist camera (metaworld's gripperPOV),
    as real setups film grasps: from the corner at 64x64 the puck is a few pixels.
Ground truth is the simulator's: `ground_truth.progress` (current progress, the primary reading) and
`ground_truth.progress_reached` (its running maximum).

Protocols, on the same held-out episodes (about 40% of the successes of each task and every failure
not used for training; with `--test_successes`/`--test_episodes`, also every episode of an evaluation-only
dataset generated with another seed, so that AUROC is not read off a handful of successes):
  (a) trained on successes only;
  (b) trained on successes plus half the failures of some kinds ("seen": drop and stall on `full`,
      grasp_air on `proprio`); the other kinds ("unseen": action_noise, place_beside) are never trained on.
Models: rewardkit's SARM (`rewardkit train`, encoder `--encoder`: efficientnet-lite0 when this install
has it, else a random tiny CLIP), lerobot's SARM (its own model, processor and loss, random CLIP ViT-B/32
as nothing can be downloaded, memoised per frame to fit a CPU budget; the corner camera, as its SARM reads
one; same episodes, steps, batch size, model size and frame gap; labelled through `rewardkit.load`), the
elapsed-time and constant baselines.
lerobot's SARM has no notion of a failed episode: in protocol (b) it trains on the same episodes.

Metrics per failure kind, family, seen/unseen and task: failure AUROC of the final progress (failures vs
successes), the margin between the worst success and the best failure, failure MAE against the current
and the reached progress; on successes: MAE and VOC. PASS/FAIL per target of issue 15.

    HF_HUB_OFFLINE=1 MUJOCO_GL=egl .venv/bin/python benchmarks/bench_quality.py --work_dir /tmp/bq --quick
    HF_HUB_OFFLINE=1 MUJOCO_GL=egl .venv/bin/python benchmarks/bench_quality.py --work_dir /tmp/bq  # full
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

TASKS = ("push-v3", "pick-place-v3")
LEROBOT_CAMERA = "corner"  # lerobot's SARM reads one camera (`image_key`)
LEROBOT_CLIP = "clip-random:vit-b-32"  # what lerobot's SARM gets offline (its CLIP ViT-B/32, random weights)
DATASETS = {
    # name: (state layout, failure kinds, kinds trained on in protocol (b), seed, cameras)
    "full": ("full", ("drop", "stall", "action_noise"), ("drop", "stall"), 0, ("corner",)),
    # vision-only failures need eyes where the grasp is: a wrist camera, as real setups have (ALOHA, SO-100,
    # DROID); from the corner camera at 64x64 the puck is a few pixels
    "proprio": ("proprio", ("grasp_air", "place_beside"), ("grasp_air",), 1, ("corner", "gripperPOV")),
}
FAMILY = {"drop": "state-visible", "stall": "state-visible", "action_noise": "state-visible",
          "grasp_air": "vision-only", "place_beside": "vision-only"}  # fmt: skip
MODEL_SIZES = {
    "small": dict(hidden_dim=256, num_layers=2, num_heads=8),
    "default": dict(hidden_dim=768, num_layers=8, num_heads=12),
}
# the evaluation-only datasets: their seed is the training dataset's plus this, and their episodes are
# keyed EVALUATION_INDEX + episode index beside the training dataset's held-out ones
EVALUATION_SEED_OFFSET, EVALUATION_INDEX = 1000, 100_000
OURS, LEROBOT = "rewardkit SARM", "lerobot SARM"
ELAPSED, CONSTANT = "baseline: elapsed fraction", "baseline: constant 0.5"
# not a model: what training's targets themselves score (see `training_targets`)
TARGETS = "training targets themselves"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f} s] {message}", flush=True)


def rewardkit_cli(*args: str) -> None:
    """Run the `rewardkit` command (the path a user takes), failing loudly with its output."""
    command = [sys.executable, "-m", "rewardkit.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def default_encoder() -> str:
    """efficientnet-lite0 (pretrained, offline) when this install has it, else a random tiny CLIP."""
    try:
        from rewardkit.encoders import make_encoder

        make_encoder("efficientnet-lite0")
        return "efficientnet-lite0"
    except Exception as e:  # not installed or not known: say so, fall back
        log(f"efficientnet-lite0 unavailable ({type(e).__name__}: {e}); using clip-random:tiny")
        return "clip-random:tiny"


# ---- data -------------------------------------------------------------------------------------------
def generate(
    work: Path, name: str, successes: int, per_kind: int, image_size: int, evaluation_only: bool = False
) -> Path:
    """The `name` dataset of both tasks, generated with `rewardkit sim` unless already in `work`.
    `evaluation_only`: another seed (other object and goal positions), for held-out episodes only."""
    state, kinds, _, seed, cameras = DATASETS[name]
    seed += EVALUATION_SEED_OFFSET if evaluation_only else 0
    params = dict(tasks=TASKS, successes=successes, per_kind=per_kind, image_size=image_size, state=state,
                  kinds=kinds, seed=seed, camera=",".join(cameras))  # fmt: skip
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    root = work / "data" / f"{name}{'-eval' if evaluation_only else ''}_{digest}"
    if (root / "meta" / "rewardkit_sim.json").exists():
        log(f"dataset {name}: cached at {root}")
        return root
    if root.exists():  # a generation killed midway: start again
        import shutil

        shutil.rmtree(root)
    log(f"dataset {name}: generating with rewardkit sim ({params})")
    rewardkit_cli(
        "sim", f"--task=[{','.join(TASKS)}]", f"--num_success={successes}",
        # kinds cycle per task; enough failures that every applicable kind gets `per_kind` on each task
        f"--num_failed={per_kind * len(kinds)}", f"--failure_kinds=[{','.join(kinds)}]",
        f"--state={state}", f"--seed={seed}", f"--image_size={image_size}", f"--cameras=[{','.join(cameras)}]",
        f"--root={root}",
    )  # fmt: skip
    return root


def splits(root: Path, seen: Sequence[str], train_fraction: float = 0.6) -> dict[str, list[int]]:
    """Training episodes of each protocol and the held-out episodes (the same for both protocols).

    Per task: the first `train_fraction` of the successes train; per seen kind, the first half of its
    failures train in protocol (b); everything else is held out.
    """
    from rewardkit.sim.metaworld_sim import read_ground_truth

    truth = read_ground_truth(root)
    train_success, train_failed, held_out = [], [], []
    for task in TASKS:
        episodes = [t for t in truth.values() if t.task == task]
        successes = [t.episode_index for t in episodes if t.kind == "success"]
        cut = max(1, math.ceil(train_fraction * len(successes)))
        train_success += successes[:cut]
        held_out += successes[cut:]
        for kind in sorted({t.kind for t in episodes} - {"success"}):
            failed = [t.episode_index for t in episodes if t.kind == kind]
            half = len(failed) // 2 if kind in seen else 0
            train_failed += failed[:half]
            held_out += failed[half:]
    return {"a": sorted(train_success), "b": sorted(train_success + train_failed),
            "b_failed": sorted(train_failed), "test": sorted(held_out)}  # fmt: skip


# ---- rewardkit ----------------------------------------------------------------------------------------
def failure_frames(truths: Mapping, failed: Sequence[int]) -> list[int]:
    """Where each failed episode failed, as an annotator would mark it: the first frame at which the
    simulator's reached progress attains its final level (the attempt makes no progress after it; a drop
    fails where the object was highest, a stall where it stopped)."""
    frames = []
    for episode in failed:
        reached = np.asarray(truths[episode].progress_reached, dtype=np.float64)
        frames.append(int(np.argmax(reached >= reached[-1] - 1e-6)))
    return frames


def failure_targets_from_sim(truths: Mapping, failed: Sequence[int]) -> list[str]:
    """What each failed episode's current progress did after its failure, as an annotator watching it would
    say: "drop" when it fell back (ends below half the progress reached: an object dropped, a grasp that
    closed on nothing), else "hold" (stalled where it got to)."""
    return [
        "drop" if truths[e].progress[-1] < 0.5 * truths[e].progress_reached[-1] else "hold" for e in failed
    ]


def completion_frames_from_sim(truths: Mapping, episodes: Sequence[int]) -> dict[int, int]:
    """Where each successful episode's task was done, as an annotator would mark it: the first frame at
    which the simulator says success (its progress is 1 from there on)."""
    return {
        e: int(np.argmax(np.asarray(truths[e].progress) >= 1.0 - 1e-6)) for e in episodes if truths[e].success
    }


def training_targets(
    truths: Mapping,
    tasks: Mapping[int, str],
    train_successes: Mapping[int, int],
    completion: Mapping[int, int] | None = None,
) -> dict:
    """What single-stage training's targets would say of each held-out episode, given its exact failure frame
    and what happened there (`failure_frames`, `failure_targets_from_sim`): the time ramp on successes, and on
    failures the ramp on the successes' clock, held or dropped from the failure frame (the targets
    `--failure_clock=successes` builds). A model that learnt such targets perfectly scores this: how far
    the targets themselves are from the simulator's progress. Not a model (it reads the failure frame off
    the simulator, which no model has at labelling time), and not a bound: a model can generalise past its
    targets. `train_successes`: training success -> its length (its completion frame + 1 when training is
    given completion frames); `completion`: held-out success -> its completion frame, when it is."""
    from rewardkit.training.sarm import episode_targets

    clock = {}
    for task in set(tasks.values()):
        lengths = [length for e, length in train_successes.items() if tasks[e] == task]
        clock[task] = int(np.median(lengths)) if lengths else None
    out = {}
    for episode, truth in truths.items():
        failed = not truth.success
        frame, after = (
            (failure_frames(truths, [episode])[0], failure_targets_from_sim(truths, [episode])[0])
            if failed
            else (None, "hold")
        )
        # the targets training builds for a single-stage episode (no annotation)
        _, tau = episode_targets(
            len(truth.progress), None, ["task"], [1.0], failed, frame, after, clock[tasks[episode]],
            (completion or {}).get(episode),
        )  # fmt: skip
        out[episode] = {"progress": tau}
    return out


def train_ours(
    root: Path,
    out: Path,
    episodes: Sequence[int],
    failed: Sequence[int],
    args,
    frames: Sequence[int] = (),
    targets: Sequence[str] = (),
    completion: Mapping[int, int] | None = None,
    progress_targets: Path | None = None,
) -> Path:
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    if checkpoint.exists():
        log(f"{OURS}: cached checkpoint {checkpoint}")
        return checkpoint
    size = MODEL_SIZES[args.model_size]
    rewardkit_cli(
        "train", "--model.type=sarm", f"--dataset.root={root}", f"--dataset.episodes=[{','.join(map(str, episodes))}]",
        f"--failed_episodes=[{','.join(map(str, failed))}]", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
        "--val_fraction=0", "--val_every=0", f"--save_every={args.steps}", f"--log_every={max(1, args.steps // 4)}",
        "--progress_bar=false", f"--output_dir={out}", f"--cache_dir={args.work_dir / 'cache'}",
        f"--model.encoder={args.encoder}", f"--model.frame_gap={args.frame_gap}", "--seed=1000",
        *(f"--model.{k}={v}" for k, v in size.items()),
        *(f"--model.{option}" for option in args.model_option),
        *(f"--{option}" for option in args.train_option),
        *([f"--failure_frames=[{','.join(map(str, frames))}]"] if frames else []),
        *([f"--failure_target={args.failure_target}"] if frames and not targets else []),
        *([f"--failure_targets=[{','.join(targets)}]"] if targets else []),
        *([f"--completed_episodes=[{','.join(map(str, completion))}]",
           f"--completion_frames=[{','.join(str(completion[e]) for e in completion)}]"] if completion else []),
        *([f"--progress_targets={progress_targets}"] if progress_targets else []),
    )  # fmt: skip
    return checkpoint


def label(
    model, dataset, episodes: Sequence[int], cache_dir: Path, evaluation=None
) -> dict[int, dict[str, np.ndarray]]:
    """The model's progress on `episodes` of `dataset`, and on every episode of the `evaluation` dataset
    when given (keyed EVALUATION_INDEX + its episode index)."""
    from rewardkit.labelling import label_dataset

    out = {}
    for data, chosen, offset in ((dataset, episodes, 0), (evaluation, None, EVALUATION_INDEX)):
        if data is None:
            continue
        previous = data.selected_episodes
        data.selected_episodes = None if chosen is None else list(chosen)
        try:
            labels = label_dataset(model, data, show_progress=False, cache_dir=cache_dir)
        finally:
            data.selected_episodes = previous
        out.update(
            {offset + ep.episode_index: {"progress": np.asarray(ep.outputs["progress"])} for ep in labels}
        )
    return out


# ---- lerobot's SARM -------------------------------------------------------------------------------------
def lerobot_patches():
    """lerobot's SARM processor, offline: a random CLIP ViT-B/32 in place of the hub's, and its per-frame
    image encoding memoised (a frame seen again is not encoded again: the same numbers, less CPU)."""
    from types import SimpleNamespace
    from unittest import mock

    import torch
    from lerobot.rewards.sarm import processor_sarm
    from transformers import CLIPImageProcessorFast

    from rewardkit.encoders import make_encoder

    clip = make_encoder(LEROBOT_CLIP)

    class OfflineProcessor:
        def __init__(self) -> None:
            self.image_processor = CLIPImageProcessorFast()
            self.tokenizer = lambda texts, return_tensors="pt", padding=True, truncation=True: clip.tokenizer(
                texts
            )

        def __call__(self, images, return_tensors="pt"):
            return self.image_processor(images=images, return_tensors=return_tensors)

    step_class = next(
        c for c in vars(processor_sarm).values() if isinstance(c, type) and hasattr(c, "_encode_images_batch")
    )
    original = step_class._encode_images_batch
    memo: dict[bytes, torch.Tensor] = {}

    def memoised(self, images):
        images = np.asarray(images)
        batch, length = images.shape[:2]
        flat = images.reshape(batch * length, *images.shape[2:])
        keys = [hashlib.blake2b(np.ascontiguousarray(f).tobytes(), digest_size=16).digest() for f in flat]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in memo}.values())
        if missing:
            encoded = original(self, flat[missing][None])[0]
            for i, row in zip(missing, encoded, strict=True):
                memo[keys[i]] = row
        return torch.stack([memo[k] for k in keys]).reshape(batch, length, -1)

    return [
        mock.patch.object(processor_sarm, "CLIPModel", SimpleNamespace(from_pretrained=lambda *a, **k: clip.model)),
        mock.patch.object(processor_sarm, "CLIPProcessor", SimpleNamespace(from_pretrained=lambda *a, **k: OfflineProcessor())),
        mock.patch.object(step_class, "_encode_images_batch", memoised),
    ]  # fmt: skip


def train_lerobot(root: Path, out: Path, episodes: Sequence[int], args) -> Path:
    """lerobot's SARM trained by its own forward/loss on its processor's batches (AdamW and the
    cosine schedule of its presets, as lerobot-train uses them)."""
    if (out / "model.safetensors").exists():
        log(f"{LEROBOT}: cached checkpoint {out}")
        return out
    from contextlib import ExitStack

    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.rewards.sarm import processor_sarm
    from lerobot.rewards.sarm.configuration_sarm import SARMConfig
    from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel
    from torch.utils.data import default_collate

    camera = f"observation.images.{LEROBOT_CAMERA}"
    with ExitStack() as stack:
        for patch in lerobot_patches():
            stack.enter_context(patch)
        config = SARMConfig(image_key=camera, device="cpu", frame_gap=args.frame_gap, batch_size=args.batch_size,
                            **MODEL_SIZES[args.model_size])  # fmt: skip
        meta = LeRobotDataset("rewardkit/metaworld-sim", root=root, episodes=list(episodes))
        deltas = [d / meta.fps for d in config.observation_delta_indices]
        dataset = LeRobotDataset("rewardkit/metaworld-sim", root=root, episodes=list(episodes),
                                 delta_timestamps={camera: deltas, "observation.state": deltas})  # fmt: skip
        torch.manual_seed(args.lerobot_seed)
        # lerobot's SARM draws rewind, language perturbation and stage conditioning from Python's `random`
        random.seed(args.lerobot_seed)
        model = SARMRewardModel(config, dataset_stats=dataset.meta.stats, dataset_meta=dataset.meta)
        pre, _ = processor_sarm.make_sarm_pre_post_processors(config, dataset.meta.stats, dataset.meta)
        preset = config.get_optimizer_preset()
        optimizer = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
        # its scheduler preset built as lerobot-train builds it (warm-up and decay scaled to a short run),
        # the schedule rewardkit's trainer gives ours
        scheduler = config.get_scheduler_preset().build(optimizer, args.steps)
        rng = np.random.default_rng(args.lerobot_seed)
        model.train()
        for step in range(args.steps):
            batch = default_collate([dataset[int(i)] for i in rng.integers(0, len(dataset), args.batch_size)])
            loss, _ = model.forward(pre(batch))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            if step % max(1, args.steps // 4) == 0 or step == args.steps - 1:
                log(f"{LEROBOT}: step {step + 1}/{args.steps} loss {loss.item():.4f}")
        model.save_pretrained(out)
    return out


# ---- metrics ---------------------------------------------------------------------------------------------
def score(
    predictions: Mapping[str, Mapping], truths: Mapping, tasks: Mapping[int, str], seen: Sequence[str]
) -> dict:
    """{model: {"summary": ..., "groups": {(task, group): breakdown}}} with groups: each kind, each family,
    seen / unseen, and "all failures", on each task and on both ("both")."""
    from rewardkit.evaluation import evaluate_models
    from rewardkit.evaluation.evaluate import failure_breakdown, success_failure_margin

    results = evaluate_models(predictions, truths)
    scored = {}
    for name, result in results.items():
        rows = result["episodes"]
        groups = {}
        for task in (*TASKS, "both"):
            here = [r for r in rows if task == "both" or tasks[r["episode_index"]] == task]
            failed = {r["episode_index"]: r["kind"] for r in here if not r["success"]}
            labellings = [
                failed,
                {i: FAMILY[k] for i, k in failed.items()},
                {i: "all failures" for i in failed},
            ]
            if seen:  # protocol (b): kinds trained on and kinds never seen
                labellings.insert(2, {i: "seen" if k in seen else "unseen" for i, k in failed.items()})
            for labelling in labellings:
                for group, row in failure_breakdown(here, labelling).items():
                    groups[(task, group)] = row
            successes = [r for r in here if r["success"]]
            if not successes:
                continue
            finals = np.array([r["final_progress"] for r in here])
            groups[(task, "successes")] = {
                "num_episodes": len(successes),
                "mae_success": float(np.mean([r["mae"] for r in successes])),
                "voc_success": float(np.mean([r["voc"] for r in successes])),
                "final_progress_mean": float(np.mean([r["final_progress"] for r in successes])),
                "margin": success_failure_margin(finals, np.array([r["success"] for r in here])),
            }
        scored[name] = {"summary": result["summary"], "groups": groups, "episodes": rows}
    return scored


def fmt(value) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def print_table(title: str, scored: Mapping[str, dict]) -> None:
    print(f"\n### {title}\n")
    print("| model | task | group (n) | AUROC | margin | final | MAE now | MAE reached |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in scored.items():
        for (task, group), row in result["groups"].items():
            if group == "successes":
                print(f"| {name} | {task} | successes ({row['num_episodes']}) | | {fmt(row['margin'])} | "
                      f"{fmt(row['final_progress_mean'])} | {fmt(row['mae_success'])} | VOC {fmt(row['voc_success'])} |")  # fmt: skip
            else:
                print(f"| {name} | {task} | {group} ({row['num_episodes']}) | {fmt(row['final_progress_auroc'])} | "
                      f"{fmt(row['margin'])} | {fmt(row['final_progress_mean'])} | {fmt(row['mae_failure'])} | "
                      f"{fmt(row['mae_failure_reached'])} |")  # fmt: skip


class Verdicts(list):
    def check(self, label: str, value: float | None, ok_if, target: str) -> None:
        ok = value is not None and bool(ok_if(value))
        self.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {fmt(value)} (target {target})")


# Issue 15's failure targets per protocol: (group, AUROC at least, MAE against current progress at most).
FAILURE_TARGETS = {
    "a": [("state-visible", 0.95, 0.08), ("vision-only", 0.85, None)],
    "b": [("seen", 0.98, 0.06), ("unseen", 0.9, None)],
}


def judge(verdicts: Verdicts, protocol: str, dataset: str, scored: Mapping[str, dict]) -> None:
    """Issue 15's targets for one protocol and dataset, on each task."""
    ours, ref = scored[OURS]["groups"], scored.get(LEROBOT, {}).get("groups", {})
    at_least = lambda bound: lambda v: v >= bound  # noqa: E731
    at_most = lambda bound: lambda v: v <= bound  # noqa: E731
    for task in TASKS:
        where = f"({protocol}) {dataset} {task}"
        for group, auroc, mae in FAILURE_TARGETS[protocol]:
            if (task, group) not in ours:
                continue
            row = ours[(task, group)]
            verdicts.check(f"{where} {group} failure AUROC", row["final_progress_auroc"], at_least(auroc),
                           f">= {auroc}")  # fmt: skip
            if mae is not None:
                own = scored[TARGETS]["groups"][(task, group)]["mae_failure"] if TARGETS in scored else None
                verdicts.check(f"{where} {group} failure MAE", row["mae_failure"], at_most(mae),
                               f"<= {mae}; the training targets themselves: {fmt(own)}")  # fmt: skip
        success = ours[(task, "successes")]
        # what a model that learnt its single-stage targets exactly would score on successes: the time
        # ramp, or the ramp to the completion frame when training was given it
        own = scored[TARGETS]["groups"][(task, "successes")]["mae_success"]
        verdicts.check(f"{where} success MAE", success["mae_success"], at_most(0.05),
                       f"<= 0.05; the training targets themselves: {own:.3f}")  # fmt: skip
        verdicts.check(f"{where} success VOC", success["voc_success"], at_least(0.95), ">= 0.95")
        if (task, "all failures") in ref:
            mine, theirs = ours[(task, "all failures")], ref[(task, "all failures")]
            verdicts.check(f"{where} AUROC ours - lerobot's", mine["final_progress_auroc"] - theirs["final_progress_auroc"],
                           at_least(0.0), ">= 0")  # fmt: skip
            verdicts.check(f"{where} failure MAE lerobot's - ours", theirs["mae_failure"] - mine["mae_failure"],
                           at_least(0.0), ">= 0")  # fmt: skip


def plot(
    path: Path,
    scored: Mapping[str, dict],
    predictions: Mapping[str, Mapping],
    truths: Mapping,
    per_kind: int = 2,
) -> None:
    """Predicted vs true progress (current and reached) for a few held-out failures of each kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds: dict[str, list[int]] = {}
    for index, truth in sorted(truths.items()):
        if not truth.success and len(kinds.setdefault(truth.kind, [])) < per_kind:
            kinds[truth.kind].append(index)
    chosen = [(k, i) for k, indices in kinds.items() for i in indices]
    if not chosen:
        return
    figure, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 2.8), squeeze=False)
    for axis, (kind, index) in zip(axes[0], chosen, strict=True):
        truth = truths[index]
        axis.plot(truth.progress, "k-", label="true (now)")
        if truth.progress_reached is not None:
            axis.plot(truth.progress_reached, "k:", label="true (reached)")
        for name in predictions:
            axis.plot(predictions[name][index]["progress"], label=name)
        axis.set_title(f"{kind} (episode {index})", fontsize=9)
        axis.set_ylim(-0.05, 1.05)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True, help="datasets, caches, checkpoints, results")
    parser.add_argument("--quick", action="store_true", help="smoke size: few episodes and steps")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (both SARMs; default 3000, quick 50)"
    )
    parser.add_argument("--batch_size", type=int, default=None, help="default 16, quick 8")
    parser.add_argument(
        "--encoder", default=None, help="rewardkit's encoder spec (default efficientnet-lite0 if known)"
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="failures per kind and task (default 8, quick 4)"
    )
    parser.add_argument(
        "--successes", type=int, default=None, help="successes per task (default 24, quick 8)"
    )
    parser.add_argument(
        "--test_successes", type=int, default=0,
        help="successes per task of an evaluation-only dataset (another seed) added to the held-out episodes",
    )  # fmt: skip
    parser.add_argument(
        "--test_episodes",
        type=int,
        default=0,
        help="failures per kind and task of that evaluation-only dataset",
    )
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument(
        "--model_size", choices=sorted(MODEL_SIZES), default=None, help="default small (quick) / default"
    )
    parser.add_argument(
        "--frame_gap", type=int, default=4, help="frames between window frames (40 fps episodes)"
    )
    parser.add_argument("--no_lerobot", action="store_true", help="skip lerobot's SARM")
    parser.add_argument(
        "--lerobot_protocols", default="a,b",
        help="protocols in which lerobot's SARM is trained and compared (its CPU cost is ~10x ours)",
    )  # fmt: skip
    parser.add_argument(
        "--lerobot_seed",
        type=int,
        default=1000,
        help="lerobot's SARM: its initialisation, batches and augmentation",
    )
    parser.add_argument(
        "--train_option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to rewardkit's `train` as --KEY=VALUE (e.g. lr=1e-4); part of the run key",
    )
    parser.add_argument(
        "--model_option", action="append", default=[], metavar="KEY=VALUE",
        help="extra rewardkit SARM config field, repeatable (e.g. frame_tokens=fused); part of the run key",
    )  # fmt: skip
    parser.add_argument("--datasets", default="full,proprio", help="which of: full, proprio")
    parser.add_argument(
        "--progress_from", choices=("time", "sim"), default="time",
        help="sim: train on the simulator's own progress (`rewardkit train --progress_targets`), what a perfect "
        "labeller would give: how far targets that are not time take the model",
    )  # fmt: skip
    parser.add_argument(
        "--completion", choices=("none", "sim"), default="none",
        help="sim: training successes get their completion frame (where the simulator says success), so "
        "their targets reach 1 there (`rewardkit train --completed_episodes/--completion_frames`)",
    )  # fmt: skip
    parser.add_argument(
        "--failure_target", choices=("hold", "drop", "sim", "none"), default="hold",
        help="protocol (b): failed training episodes get their failure frame (from the simulator's reached "
        "progress) and this target after it; sim: per episode, drop where its current progress fell back, "
        "else hold; none: marked failed, frame unknown",
    )  # fmt: skip
    args = parser.parse_args()
    args.steps = args.steps or (50 if args.quick else 3000)
    args.episodes = args.episodes or (4 if args.quick else 8)
    args.successes = args.successes or (8 if args.quick else 24)
    args.model_size = args.model_size or "small"
    args.batch_size = args.batch_size or (8 if args.quick else 16)
    args.encoder = args.encoder or default_encoder()
    if (args.test_successes > 0) != (args.test_episodes > 0):
        parser.error("--test_successes and --test_episodes go together (AUROC needs successes and failures)")
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    log(f"settings: steps {args.steps}, batch {args.batch_size}, encoder {args.encoder}, model {args.model_size}, "
        f"{args.successes} successes and {args.episodes} failures per kind per task, {os.cpu_count()} CPUs")  # fmt: skip

    import rewardkit
    from rewardkit.data.dataset import open_dataset
    from rewardkit.evaluation import ground_truth_from_dataset

    verdicts = Verdicts()
    timings: dict[str, float] = {}
    everything = {}
    run_key = f"{args.encoder.replace(':', '_').replace('/', '_')}_{args.model_size}_s{args.steps}_b{args.batch_size}_g{args.frame_gap}"
    run_key += "".join(f"_{option.replace('=', '-')}" for option in args.model_option + args.train_option)
    run_key += "_done-sim" if args.completion == "sim" else ""
    run_key += "_targets-sim" if args.progress_from == "sim" else ""
    # lerobot's SARM depends on the data and budget only, not on rewardkit's encoder or options: one
    # checkpoint per dataset, protocol and budget serves every variant of ours
    lerobot_runs = (
        args.work_dir
        / "runs"
        / f"lerobot_{args.model_size}_s{args.steps}_b{args.batch_size}_g{args.frame_gap}"
        f"{'' if args.lerobot_seed == 1000 else f'_seed{args.lerobot_seed}'}"
    )
    # results scored with an evaluation-only dataset are kept apart from those without
    test_key = f"_test{args.test_successes}x{args.test_episodes}" if args.test_successes else ""
    for name in args.datasets.split(","):
        _, kinds, seen, _, _ = DATASETS[name]
        t0 = time.perf_counter()
        root = generate(args.work_dir, name, args.successes, args.episodes, args.image_size)
        timings[f"{name}: dataset"] = time.perf_counter() - t0
        split = splits(root, seen)
        dataset = open_dataset(root=root)
        dataset.selected_episodes = split["test"]
        truths = ground_truth_from_dataset(dataset, stage_scheme=None)
        dataset.selected_episodes = None
        from rewardkit.sim.metaworld_sim import read_ground_truth

        task_of = {i: truth.task for i, truth in read_ground_truth(root).items()}
        evaluation = None
        if args.test_successes:
            import dataclasses

            extra_root = generate(args.work_dir, name, args.test_successes, args.test_episodes, args.image_size,
                                  evaluation_only=True)  # fmt: skip
            evaluation = open_dataset(root=extra_root)
            for i, truth in ground_truth_from_dataset(evaluation, stage_scheme=None).items():
                truths[EVALUATION_INDEX + i] = dataclasses.replace(truth, episode_index=EVALUATION_INDEX + i)
            task_of.update({EVALUATION_INDEX + i: t.task for i, t in read_ground_truth(extra_root).items()})
        extra = (
            f", {len(truths) - len(split['test'])} of them from {evaluation.root.name}" if evaluation else ""
        )
        log(f"{name}: train (a) {len(split['a'])} episodes, (b) {len(split['b'])} ({len(split['b_failed'])} failed, "
            f"kinds {list(seen)}); held out {len(truths)} ({sum(not t.success for t in truths.values())} failed{extra})")  # fmt: skip
        completion, held_completion = {}, {}
        if args.completion == "sim":
            dataset.selected_episodes = split["a"]
            completion = completion_frames_from_sim(
                ground_truth_from_dataset(dataset, stage_scheme=None), split["a"]
            )
            dataset.selected_episodes = None
            held_completion = completion_frames_from_sim(truths, [e for e in truths if truths[e].success])
            log(f"{name}: completion frames of the training successes {completion}")
        sim_targets = None
        if args.progress_from == "sim":
            from rewardkit.labelling.parquet import EpisodeLabels, write_progress_parquet

            every = ground_truth_from_dataset(dataset, stage_scheme=None)
            (args.work_dir / "targets").mkdir(exist_ok=True)
            starts = {e.episode_index: e.from_index for e in dataset.episodes()}
            sim_targets = write_progress_parquet(
                args.work_dir / "targets" / f"{root.name}_sim_progress.parquet",
                [EpisodeLabels(e, starts[e], {"progress": np.asarray(t.progress, np.float32)}) for e, t in every.items()],
                model_path="the simulator's progress",
            )  # fmt: skip
            log(f"{name}: training targets from the simulator's progress: {sim_targets}")
        for protocol in ("a", "b"):
            failed = split["b_failed"] if protocol == "b" else []
            # (b)'s checkpoints depend on what training is told about the failures; (a)'s do not
            # keyed by the dataset's folder (its generation parameters' digest) and the protocol
            tag = f"{root.name}_{protocol}" + (f"_fail-{args.failure_target}" if protocol == "b" else "")
            out = args.work_dir / "runs" / run_key / tag
            predictions = {}
            t0 = time.perf_counter()
            frames, targets = [], []
            if failed and args.failure_target != "none":
                dataset.selected_episodes = failed
                failed_truths = ground_truth_from_dataset(dataset, stage_scheme=None)
                frames = failure_frames(failed_truths, failed)
                if args.failure_target == "sim":
                    targets = failure_targets_from_sim(failed_truths, failed)
                dataset.selected_episodes = None
                log(f"{name} ({protocol}): failure frames {dict(zip(failed, frames, strict=True))}"
                    + (f", targets {dict(zip(failed, targets, strict=True))}" if targets else ""))  # fmt: skip
            checkpoint = train_ours(
                root,
                out / "rewardkit",
                split[protocol],
                failed,
                args,
                frames,
                targets,
                completion,
                sim_targets,
            )
            timings[f"{name} ({protocol}): {OURS} train"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            predictions[OURS] = label(
                rewardkit.load(checkpoint).eval(), dataset, split["test"], args.work_dir / "cache", evaluation
            )
            timings[f"{name} ({protocol}): {OURS} label"] = time.perf_counter() - t0
            if not args.no_lerobot and protocol in args.lerobot_protocols.split(","):
                t0 = time.perf_counter()
                # lerobot's SARM knows no failures: one checkpoint per protocol whatever --failure_target
                folder = train_lerobot(root, lerobot_runs / f"{root.name}_{protocol}", split[protocol], args)
                timings[f"{name} ({protocol}): {LEROBOT} train"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                model = rewardkit.load(folder).eval()
                model.config.encoder = LEROBOT_CLIP  # the random CLIP it was trained with
                predictions[LEROBOT] = label(
                    model, dataset, split["test"], args.work_dir / "cache", evaluation
                )
                timings[f"{name} ({protocol}): {LEROBOT} label"] = time.perf_counter() - t0
            models = dict(predictions)
            lengths = {
                e.episode_index: completion[e.episode_index] + 1
                if e.episode_index in completion
                else e.length
                for e in dataset.episodes()
                if e.episode_index in split["a"]
            }
            predictions[TARGETS] = (
                {e: {"progress": np.asarray(t.progress)} for e, t in truths.items()}
                if sim_targets
                else training_targets(truths, task_of, lengths, held_completion)
            )
            scored = score(predictions, truths, task_of, seen if protocol == "b" else ())
            everything[tag] = scored
            print_table(f"protocol ({protocol}), {name} state, held-out episodes", scored)
            plot(args.work_dir / "plots" / f"{run_key}_{tag}{test_key}.png", scored, models, truths)
            judge(verdicts, protocol, name, scored)

    # a run on some of the datasets does not replace the results of a run on the others
    only = "" if args.datasets == "full,proprio" else f"_{args.datasets.replace(',', '-')}"
    only += "" if args.lerobot_seed == 1000 or args.no_lerobot else f"_lerobot-seed{args.lerobot_seed}"
    results_path = args.work_dir / f"results_{run_key}_fail-{args.failure_target}{test_key}{only}.json"
    serialisable = {
        key: {model: {"summary": r["summary"], "groups": {f"{t} | {g}": row for (t, g), row in r["groups"].items()}}
              for model, r in scored.items()}
        for key, scored in everything.items()
    }  # fmt: skip
    results_path.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "timings": timings,
                                        "results": serialisable}, indent=1, default=str))  # fmt: skip
    print("\n### wall time\n")
    for key, seconds in timings.items():
        print(f"  {key}: {seconds:.1f} s")
    print(f"  total: {time.perf_counter() - START:.1f} s on {os.cpu_count()} CPUs")
    print(
        f"\n{sum(verdicts)}/{len(verdicts)} targets PASS; results in {results_path}; plots in {args.work_dir / 'plots'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
