"""Annotation writing and SARM targets, against lerobot 0.6.1's own code, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_annotations.py [--episodes 400 --files 4]

Episode metadata for N episodes is split over several parquet files (as a long recording gets). Then:

- writing one scheme's subtask annotations for every episode: lerobot's
  `save_annotations_to_dataset` vs `rewardkit.data.annotations.write_annotations`; time, and whether
  each episode's annotation landed in its own row (lerobot indexes each file by the global episode
  index, so episodes outside the first file land in wrong or new rows);
- per-frame stage + tau for every frame: lerobot's `find_stage_and_tau` called per frame vs
  `stage_tau_targets` per episode (vectorised); time and agreement inside subtasks.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from rewardkit.data.annotations import SubtaskAnnotation, read_annotations, write_annotations  # noqa: E402

FPS = 10
NAMES = ["reach", "grasp", "place"]


def make_metadata(root: Path, lengths: list[int], files: int) -> None:
    """meta/info.json and meta/episodes/chunk-000/file-00k.parquet with lerobot's episode columns."""
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"fps": FPS, "codebase_version": "v3.0"}))
    bounds = np.cumsum([0, *lengths])
    for k, chunk in enumerate(np.array_split(np.arange(len(lengths)), files)):
        table = pa.table(
            {
                "episode_index": pa.array(chunk, pa.int64()),
                "length": pa.array([lengths[i] for i in chunk], pa.int64()),
                "dataset_from_index": pa.array(bounds[chunk], pa.int64()),
                "dataset_to_index": pa.array(bounds[chunk + 1], pa.int64()),
                "meta/episodes/chunk_index": pa.array([0] * len(chunk), pa.int64()),
                "meta/episodes/file_index": pa.array([k] * len(chunk), pa.int64()),
            }
        )
        pq.write_table(table, root / "meta" / "episodes" / "chunk-000" / f"file-{k:03d}.parquet")


def whole_second_annotations(lengths: list[int], rng: np.random.Generator) -> dict[int, SubtaskAnnotation]:
    """Three subtasks per episode, boundaries on whole seconds (what lerobot's MM:SS strings can hold)."""
    out = {}
    for i, length in enumerate(lengths):
        seconds = (length - 1) // FPS
        a, b = sorted(rng.choice(np.arange(1, seconds), 2, replace=False))
        cuts = [0, int(a), int(b), seconds]
        out[i] = SubtaskAnnotation(NAMES, [c * FPS for c in cuts[:-1]], [c * FPS for c in cuts[1:]])
    return out


def rows_in_place(root: Path, expected: dict[int, SubtaskAnnotation], column: str) -> tuple[int, int]:
    """(episodes whose own row holds their names, rows in the files beyond the episodes)."""
    good, rows = 0, 0
    for path in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        rows += table.num_rows
        if column not in table.column_names:
            continue
        for episode_index, names in zip(
            table["episode_index"].to_pylist(), table[column].to_pylist(), strict=True
        ):
            if (
                episode_index is not None
                and names is not None
                and tuple(names) == expected[episode_index].names
            ):
                good += 1
    return good, rows - len(expected)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(200, 600, args.episodes)]
    annotations = whole_second_annotations(lengths, rng)

    from lerobot.data_processing.sarm_annotations import subtask_annotation as lerobot_annotation
    from lerobot.rewards.sarm.sarm_utils import find_stage_and_tau

    def to_lerobot(annotation: SubtaskAnnotation):
        def mmss(frame: int) -> str:
            seconds = frame // FPS
            return f"{seconds // 60:02d}:{seconds % 60:02d}"

        return lerobot_annotation.SubtaskAnnotation(
            subtasks=[
                lerobot_annotation.Subtask(
                    name=n, timestamps=lerobot_annotation.Timestamp(start=mmss(s), end=mmss(e))
                )
                for n, s, e in zip(
                    annotation.names, annotation.start_frames, annotation.end_frames, strict=True
                )
            ]
        )

    lerobot_input = {i: to_lerobot(a) for i, a in annotations.items()}
    with tempfile.TemporaryDirectory() as tmp:
        theirs_root, ours_root = Path(tmp) / "theirs", Path(tmp) / "ours"
        make_metadata(theirs_root, lengths, args.files)
        make_metadata(ours_root, lengths, args.files)

        start = time.perf_counter()
        theirs_error = ""
        try:
            lerobot_annotation.save_annotations_to_dataset(theirs_root, lerobot_input, FPS, prefix="dense")
        except Exception as e:  # lerobot 0.6.1 fails on rows outside the first file; we report it
            theirs_error = (
                f"  FAILED with {type(e).__name__}: {str(e)[:80]} (files already rewritten stay so)"
            )
        theirs_s = time.perf_counter() - start
        theirs_good, theirs_extra = rows_in_place(theirs_root, annotations, "dense_subtask_names")

        start = time.perf_counter()
        write_annotations(ours_root, "dense", annotations)
        ours_s = time.perf_counter() - start
        ours_good, ours_extra = rows_in_place(ours_root, annotations, "dense_subtask_names")
        assert read_annotations(ours_root, "dense") == annotations

    n = args.episodes
    print(f"write {n} episodes' dense annotations, metadata in {args.files} files")
    print(
        f"  lerobot save_annotations_to_dataset: {theirs_s:8.2f} s, episodes in their own row "
        f"{theirs_good}/{n}, extra rows {theirs_extra}"
    )
    if theirs_error:
        print(theirs_error)
    print(
        f"  rewardkit write_annotations:         {ours_s:8.2f} s, episodes in their own row "
        f"{ours_good}/{n}, extra rows {ours_extra}"
    )
    print(f"  speed-up {theirs_s / ours_s:.1f}x")

    frames = sum(lengths)
    start = time.perf_counter()
    theirs_targets = []
    for i, length in enumerate(lengths):
        a = annotations[i]
        names, starts, ends = list(a.names), list(a.start_frames), list(a.end_frames)
        theirs_targets.append(
            [find_stage_and_tau(t, length, names, starts, ends, NAMES, {}) for t in range(length)]
        )
    theirs_s = time.perf_counter() - start
    start = time.perf_counter()
    ours_targets = [annotations[i].stage_tau(length, NAMES) for i, length in enumerate(lengths)]
    ours_s = time.perf_counter() - start
    agree = total = 0
    for i, length in enumerate(lengths):
        stage, tau = ours_targets[i]
        inside = np.arange(length) <= annotations[i].end_frames[-1]  # after the last: 0.999 vs 1 (documented)
        theirs = np.array(theirs_targets[i])
        agree += int(np.sum(inside & (theirs[:, 0] == stage) & np.isclose(theirs[:, 1], tau, atol=1e-6)))
        total += int(inside.sum())
    print(f"stage + tau for {frames} frames ({n} episodes)")
    print(f"  lerobot find_stage_and_tau per frame: {theirs_s:8.3f} s")
    print(f"  rewardkit stage_tau_targets:          {ours_s:8.3f} s   speed-up {theirs_s / ours_s:.0f}x")
    print(f"  agreement on frames up to the last subtask's end: {agree}/{total}")


if __name__ == "__main__":
    main()
