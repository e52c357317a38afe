"""Which failure targets serve held-out failures (issue 15.3): targets vs the simulator's truth, then SARM
trained on protocol (b) of `bench_quality.py` with each definition, on the same episodes and seed.

Part 1 (no training): per failure kind, the MAE of each target definition against the true current
progress and the progress reached, and the final target. The failure frame of an episode is where its true
progress reached its final maximum (where the attempt stopped getting anywhere), as a user marking the
frame would put it.
Part 2 (`--variants`): `rewardkit train` on protocol (b) (successes plus half the drop/stall failures)
with: `a` (successes only), `none` (failed episodes, no frame: what bench_quality does), `drop` / `hold`
(`--failure_frames` and `--failure_target`); scored on the held-out episodes with bench_quality's scorer.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_failure_targets.py \\
        --root /tmp/bq/data/full_<digest> --work_dir /tmp/bft --steps 150 --batch_size 16 --variants a,none,drop,hold
(the `full` dataset bench_quality.py generated into its --work_dir.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_quality as bq  # noqa: E402

SEEN = ("drop", "stall")


def true_progress(dataset) -> dict[int, np.ndarray]:
    return {
        e.episode_index: np.asarray(
            dataset.read_columns(e.episode_index, ["ground_truth.progress"])["ground_truth.progress"], float
        ).reshape(-1)
        for e in dataset.episodes()
    }


def failure_frame(now: np.ndarray) -> int:
    reached = np.maximum.accumulate(now)
    return int(np.argmax(reached >= reached[-1] - 1e-6))


def targets_vs_truth(truth, progress: dict[int, np.ndarray]) -> None:
    from rewardkit.data import targets as tg

    rows: dict[str, list] = {}
    for index, now in progress.items():
        kind, length = truth[index].kind, len(now)
        reached = np.maximum.accumulate(now)
        ramp = tg.single_stage_targets(length)[1].astype(float)
        definitions = {"success ramp": ramp}
        if kind != "success":
            frame = failure_frame(now)
            definitions["cap 0.9, no frame"] = tg.failure_progress(length, ramp)
            definitions["drop to 0 at frame"] = tg.failure_progress(length, ramp, frame)
            definitions["hold from frame"] = tg.failure_progress(length, ramp, frame, after="hold")
        rows.setdefault(kind, []).append(
            {k: (np.abs(v - now).mean(), np.abs(v - reached).mean(), v[-1]) for k, v in definitions.items()}
        )
    print("| kind (n) | target | MAE now | MAE reached | final target |\n|---|---|---|---|---|")
    for kind, episodes in rows.items():
        for name in episodes[0]:
            m = np.array([e[name] for e in episodes]).mean(0)
            print(f"| {kind} ({len(episodes)}) | {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="bench_quality's generated `full` dataset")
    parser.add_argument("--work_dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument(
        "--variants", default="", help="comma list of a, none, drop, hold (empty: part 1 only)"
    )
    args = parser.parse_args()

    import rewardkit
    from rewardkit.data.dataset import open_dataset
    from rewardkit.evaluation import ground_truth_from_dataset
    from rewardkit.sim.metaworld_sim import read_ground_truth

    truth = read_ground_truth(args.root)
    dataset = open_dataset(root=args.root)
    progress = true_progress(dataset)
    targets_vs_truth(truth, progress)
    split = bq.splits(args.root, SEEN)
    dataset.selected_episodes = split["test"]
    truths = ground_truth_from_dataset(dataset, stage_scheme=None)
    dataset.selected_episodes = None
    failed = split["b_failed"]
    for variant in [v for v in args.variants.split(",") if v]:
        out = args.work_dir / f"runs/s{args.steps}_b{args.batch_size}/{variant}"
        checkpoint = out / "checkpoints/last/pretrained_model"
        if not checkpoint.exists():
            episodes = split["a"] if variant == "a" else split["b"]
            extra = [] if variant == "a" else [f"--failed_episodes=[{','.join(map(str, failed))}]"]
            if variant in ("drop", "hold"):
                frames = ",".join(str(failure_frame(progress[e])) for e in failed)
                extra += [f"--failure_frames=[{frames}]", f"--failure_target={variant}"]
            t0 = time.time()
            bq.rewardkit_cli(
                "train", "--model.type=sarm", f"--dataset.root={args.root}",
                f"--dataset.episodes=[{','.join(map(str, episodes))}]", *extra, f"--steps={args.steps}",
                f"--batch_size={args.batch_size}", "--val_fraction=0", "--val_every=0", f"--save_every={args.steps}",
                "--progress_bar=false", f"--output_dir={out}", f"--cache_dir={args.work_dir / 'cache'}",
                f"--model.encoder={args.encoder}", "--model.frame_gap=4", "--seed=1000",
                *(f"--model.{k}={v}" for k, v in bq.MODEL_SIZES["small"].items()),
            )  # fmt: skip
            print(f"{variant}: trained in {time.time() - t0:.0f} s", flush=True)
        labels = bq.label(rewardkit.load(checkpoint).eval(), dataset, split["test"], args.work_dir / "cache")
        task_of = {i: t.task for i, t in truth.items()}
        scored = bq.score({variant: labels}, truths, task_of, SEEN if variant != "a" else ())
        both = {key: row for key, row in scored[variant]["groups"].items() if key[0] == "both"}
        bq.print_table(f"variant {variant}, both tasks", {variant: {"groups": both}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
