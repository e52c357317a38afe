"""The progress parquet: per-frame progress in the schema lerobot's RA-BC weighter reads.

Columns: `index` (global frame index, int64), `episode_index` (int64), `frame_index` (int64),
`progress_sparse` (float32) and, when the model has a dense head, `progress_dense` (float32); rows sorted
by `index`. The schema metadata holds `reward_model_path` (lerobot reads it back with
`get_reward_model_path_from_parquet`) and `rewardkit` (a JSON blob: stride, model type, version).
This is exactly what `lerobot.rewards.sarm.rabc.RABCWeights` loads, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write

PROGRESS_FILENAME = "sarm_progress.parquet"  # lerobot's default name, found by its RA-BC weighter


@dataclass
class EpisodeLabels:
    """One episode's labelled outputs.

    Args:
        episode_index: the episode's index.
        from_index: global index (`index` column) of the episode's first frame.
        outputs: name -> array; "progress" (T,) always, optionally "progress_dense" (T,),
            "stage_probs" (T, K), "stage_probs_dense" (T, K'), "success_prob" (T,).
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


def progress_table(labels: Sequence[EpisodeLabels], metadata: dict[str, str] | None = None):
    """Build the RA-BC progress table (a pyarrow Table, sorted by `index`) from labelled episodes."""
    import pyarrow as pa

    if not labels:
        raise RewardkitError("no labelled episodes to write")
    has_dense = all("progress_dense" in ep.outputs for ep in labels)
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


def read_progress_parquet(path: str | Path) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, str]]:
    """Read a progress parquet back: ({episode_index: {"progress": (T,), ["progress_dense": (T,)]}}, metadata).

    Rows are put in `frame_index` order per episode. Raises ValueError naming the file when a required
    column is missing.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"progress parquet {path} not found")
    table = pq.read_table(path)
    required = {"index", "episode_index", "frame_index", "progress_sparse"}
    missing = sorted(required - set(table.column_names))
    if missing:
        raise RewardkitError(f"{path} is not a progress parquet: missing column(s) {missing}")
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    episode = table.column("episode_index").to_numpy()
    frame = table.column("frame_index").to_numpy()
    sparse = table.column("progress_sparse").to_numpy()
    dense = table.column("progress_dense").to_numpy() if "progress_dense" in table.column_names else None
    out: dict[int, dict[str, np.ndarray]] = {}
    for ep in np.unique(episode):
        rows = np.flatnonzero(episode == ep)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        entry = {"progress": sparse[rows].astype(np.float32)}
        if dense is not None:
            entry["progress_dense"] = dense[rows].astype(np.float32)
        out[int(ep)] = entry
    return out, metadata
