"""The progress parquet: per-frame progress in the schema lerobot's RA-BC weighter reads.

Columns: `index` (global frame index, int64), `episode_index` (int64), `frame_index` (int64),
`progress_sparse` (float32), when the model has a dense head `progress_dense` (float32), and when it gives them
`success_prob`, `log_prob` and `progress_std` (an ensemble's spread across its members) (float32, see
`EXTRA_COLUMNS`); rows sorted
by `index`. The schema metadata holds `reward_model_path` (lerobot reads it back with
`get_reward_model_path_from_parquet`) and `rewardkit` (a JSON blob: stride, model type, episodes, and
`dataset`, the fingerprint of the dataset labelled, see `dataset_fingerprint`).
This is exactly what `lerobot.rewards.sarm.rabc.RABCWeights` loads, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write

logger = logging.getLogger(__name__)

PROGRESS_FILENAME = "sarm_progress.parquet"  # lerobot's default name, found by its RA-BC weighter


@dataclass
class EpisodeLabels:
    """One episode's labelled outputs.

    Args:
        episode_index: the episode's index.
        from_index: global index (`index` column) of the episode's first frame.
        outputs: name -> array; "progress" (T,) always, optionally "progress_dense" (T,),
            "stage_probs" (T, K), "stage_probs_dense" (T, K'), "success_prob" (T,), "progress_std" (T,).
    """

    episode_index: int
    from_index: int
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(len(self.outputs["progress"]))

    @property
    def progress(self) -> np.ndarray:
        return self.outputs["progress"]


# Optional per-frame columns written beside the progress columns (readers that do not know them ignore
# them: lerobot's RA-BC reads `progress_sparse` / `progress_dense` only).
EXTRA_COLUMNS = ("success_prob", "log_prob", "progress_std")


def progress_table(labels: Sequence[EpisodeLabels], metadata: dict[str, str] | None = None):
    """Build the RA-BC progress table (a pyarrow Table, sorted by `index`) from labelled episodes."""
    import pyarrow as pa

    if not labels:
        raise RewardkitError("no labelled episodes to write")
    has_dense = all("progress_dense" in ep.outputs for ep in labels)
    # Per-frame outputs besides progress, each its own column when every episode has it (a success
    # head's probability; TOPReward's raw log-probability beside its normalised progress).
    extras = [name for name in EXTRA_COLUMNS if all(name in ep.outputs for ep in labels)]
    index, episode, frame, sparse, dense = [], [], [], [], []
    for ep in labels:
        length = ep.length
        index.append(np.arange(ep.from_index, ep.from_index + length, dtype=np.int64))
        episode.append(np.full(length, ep.episode_index, dtype=np.int64))
        frame.append(np.arange(length, dtype=np.int64))
        sparse.append(np.asarray(ep.outputs["progress"], dtype=np.float32))
        if has_dense:
            dense.append(np.asarray(ep.outputs["progress_dense"], dtype=np.float32))
    columns: dict[str, Any] = {
        "index": np.concatenate(index),
        "episode_index": np.concatenate(episode),
        "frame_index": np.concatenate(frame),
        "progress_sparse": np.concatenate(sparse),
    }
    if has_dense:
        columns["progress_dense"] = np.concatenate(dense)
    for name in extras:
        columns[name] = np.concatenate([np.asarray(ep.outputs[name], dtype=np.float32) for ep in labels])
    order = np.argsort(columns["index"], kind="stable")
    table = pa.table({k: v[order] for k, v in columns.items()})
    meta = {k.encode(): v.encode() for k, v in (metadata or {}).items()}
    return table.replace_schema_metadata(meta)


def write_progress_parquet(
    path: str | Path,
    labels: Sequence[EpisodeLabels],
    model_path: str,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the progress parquet at `path` atomically (temporary file beside it, then `os.replace`).

    `model_path` goes into the schema metadata as `reward_model_path`; `extra_metadata` (JSON-able)
    as `rewardkit`. Returns the path written.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    metadata = {"reward_model_path": str(model_path)}
    if extra_metadata:
        metadata["rewardkit"] = json.dumps(extra_metadata, sort_keys=True)
    table = progress_table(labels, metadata)
    return atomic_write(path, lambda temporary: pq.write_table(table, temporary))


def read_progress_parquet(
    path: str | Path, with_index: bool = False
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, str]]:
    """Read a progress parquet: ({episode_index: {"progress": (T,), ["progress_dense": (T,)],
    ["progress_std": (T,)]}}, metadata); "progress_std" (an ensemble's spread) when the file has it.

    The one reader of the format (labelling, viz, RA-BC and RewACT's targets all come through here).
    Rows are put in `frame_index` order per episode (`index` order when the file has no `frame_index`,
    as some hand-made files do). With `with_index`, each episode also holds "index" (T,) int64 (global
    frame index) and "frame_index" (T,) int64, the columns RA-BC looks frames up by. The file is read,
    not checked against a dataset: see `check_progress`.

    Raises:
        FileNotFoundError: no file at `path`.
        RewardkitError: naming the file, when a required column is missing or an index column does not
            hold integers.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"progress parquet {path} not found (write one with `rewardkit label`)")
    names = pq.read_schema(path).names
    required = ("index", "episode_index", "progress_sparse")
    missing = [c for c in required if c not in names]
    if missing:
        available = [c for c in names if c.startswith("progress")]
        raise RewardkitError(
            f"{path} is not a progress parquet: missing column(s) {missing} (progress columns: {available})"
        )
    wanted = [c for c in (*required, "frame_index", "progress_dense", "progress_std") if c in names]
    # One thread: on a busy machine pyarrow's thread pool costs more than it gains for a few columns.
    table = pq.read_table(path, columns=wanted, use_threads=False)
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}

    def integers(name: str) -> np.ndarray:
        values = table.column(name).to_numpy()
        if not np.issubdtype(values.dtype, np.integer):
            raise RewardkitError(f"column {name!r} of {path} must hold integers, got {values.dtype}")
        return values.astype(np.int64, copy=False)

    index = integers("index")
    episode = integers("episode_index")
    frame = integers("frame_index") if "frame_index" in names else None
    columns = {"progress": "progress_sparse"}
    for optional in ("progress_dense", "progress_std"):
        if optional in names:
            columns[optional] = optional
    values = {
        key: table.column(name).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        for key, name in columns.items()
    }
    # One sort by (episode, frame) then a split: O(N log N), not one scan of the file per episode.
    order = np.lexsort((frame if frame is not None else index, episode))
    sorted_episode = episode[order]
    starts = np.flatnonzero(np.r_[True, sorted_episode[1:] != sorted_episode[:-1]]) if order.size else []
    bounds = [*map(int, starts), int(order.size)]
    out: dict[int, dict[str, np.ndarray]] = {}
    for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[begin:end]
        entry = {key: array[rows] for key, array in values.items()}
        if with_index:
            entry["index"] = index[rows]
            entry["frame_index"] = (
                frame[rows] if frame is not None else np.arange(end - begin, dtype=np.int64)
            )
        out[int(sorted_episode[begin])] = entry
    return out, metadata


# ---- does a progress file fit its dataset ------------------------------------------------------
def dataset_fingerprint(dataset: Any) -> dict[str, Any]:
    """What identifies a dataset's frame layout: every episode's index, first global index and length.

    `dataset`: a `RewardDataset`; all of its episodes count, whatever the selection, so a file labelled
    on a subset of episodes still fits the whole dataset. The labeller records this in the progress
    parquet's metadata (`rewardkit` -> `dataset`); RA-BC compares it with the dataset it trains on.
    """
    layout = sorted((e.episode_index, e.from_index, e.length) for e in _all_episodes(dataset))
    return {
        "repo_id": str(dataset.repo_id),
        "root": str(dataset.root),
        "num_episodes": len(layout),
        "num_frames": int(sum(length for _, _, length in layout)),
        "episodes_sha256": hashlib.sha256(json.dumps(layout).encode()).hexdigest(),
    }


def _all_episodes(dataset: Any) -> list:
    """Every episode of `dataset` (a `RewardDataset`), ignoring its episode selection."""
    if dataset.selected_episodes is None:
        return dataset.episodes()
    import dataclasses

    return dataclasses.replace(dataset, selected_episodes=None).episodes()


def _episode_list(episodes: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(e) for e in episodes[:limit])
    return shown + (f" ... ({len(episodes)} episodes)" if len(episodes) > limit else "")


def check_progress(
    path: str | Path,
    progress: dict[int, dict[str, np.ndarray]],
    metadata: dict[str, str],
    column: str = "progress",
    dataset: Any = None,
) -> None:
    """Refuse a progress file that does not fit `dataset`, or whose `column` holds no value at all.

    Args:
        path: the file (for messages).
        progress, metadata: what `read_progress_parquet(path, with_index=True)` returned.
        column: the progress column used ("progress" = progress_sparse, or "progress_dense").
        dataset: the `RewardDataset` the progress is used on; None skips the dataset checks.

    Checks, in order: the dataset fingerprint the labeller recorded (when present) equals `dataset`'s;
    every episode of the file is an episode of `dataset` with the same frames (global `index` range and
    `frame_index` 0..T-1); `column` is not NaN everywhere. Some NaN is logged as a warning with the
    number of frames and the episodes.

    Raises:
        RewardkitError: naming the file, the episode and what to do.
    """
    path = Path(path)
    if dataset is not None:
        try:
            recorded = json.loads(metadata.get("rewardkit") or "{}").get("dataset")
        except (json.JSONDecodeError, AttributeError):
            recorded = None  # not ours (lerobot's or hand-made): the frame checks below still apply
        if recorded:
            expected = dataset_fingerprint(dataset)
            if recorded.get("episodes_sha256") != expected["episodes_sha256"]:
                raise RewardkitError(
                    f"{path} was labelled from another dataset ({recorded.get('repo_id')} at "
                    f"{recorded.get('root')}: {recorded.get('num_episodes')} episodes, "
                    f"{recorded.get('num_frames')} frames) than {dataset.root} ({expected['num_episodes']} "
                    f"episodes, {expected['num_frames']} frames); label this dataset with "
                    f"`rewardkit label --dataset.root={dataset.root}`"
                )
        whole = {e.episode_index: e for e in _all_episodes(dataset)}
        unknown = sorted(set(progress) - set(whole))
        if unknown:
            raise RewardkitError(
                f"{path} holds episode(s) {_episode_list(unknown)} that {dataset.root} does not have; "
                "was it labelled from another dataset?"
            )
        for episode_index, entry in progress.items():
            info = whole[episode_index]
            length = len(entry["progress"])
            index = entry.get("index")
            frame = entry.get("frame_index")
            fits = (
                length == info.length
                and (frame is None or bool(np.array_equal(frame, np.arange(length))))
                and (index is None or bool(np.array_equal(index, np.arange(info.from_index, info.to_index))))
            )
            if not fits:
                first = "?" if index is None or not length else int(index[0])
                raise RewardkitError(
                    f"{path}: episode {episode_index} has {length} frames from index {first}, the dataset "
                    f"{dataset.root} has {info.length} frames from index {info.from_index}: the file does "
                    f"not fit this dataset; label it with `rewardkit label --dataset.root={dataset.root}`"
                )
    name = "progress_sparse" if column == "progress" else column
    present = [e for e, entry in progress.items() if column in entry]
    if not present:
        raise RewardkitError(f"{path} has no column '{name}'")
    nan_frames = {e: int(np.count_nonzero(np.isnan(progress[e][column]))) for e in present}
    total = sum(len(progress[e][column]) for e in present)
    missing = sum(nan_frames.values())
    if total and missing == total:
        raise RewardkitError(
            f"{path}: column '{name}' is NaN on every frame; there is no progress to weight by "
            "(relabel the dataset with `rewardkit label`)"
        )
    if missing:
        episodes = sorted(e for e, count in nan_frames.items() if count)
        logger.warning(
            "%s: column '%s' is NaN on %d of %d frames, in episode(s) %s",
            path,
            name,
            missing,
            total,
            _episode_list(episodes),
        )
