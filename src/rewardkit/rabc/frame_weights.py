"""Per-frame weights for any lerobot policy: the weights parquet and the `SampleWeighter` that reads it.

The file: columns `index` (global frame index, int64) and `weight` (float32, finite, >= 0), optionally
`episode_index` and more; the parquet schema metadata key `rewardkit_weights` holds the provenance as
JSON (`source`: "rabc" or "curation", the parameters, the progress file, the dataset fingerprint). Written
from RA-BC (`rewardkit weights`) or from curation verdicts (`rewardkit curate --weights_output=...`);
read by `PrecomputedWeighter` when training with `--sample_weighting.type=precomputed
--sample_weighting.progress_path=<weights parquet>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.utils.sample_weighting import SampleWeighter

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write

PROVENANCE_KEY = "rewardkit_weights"
FORMAT_VERSION = 1
DEFAULT_VERDICT_WEIGHTS = {"keep": 1.0, "look": 1.0, "drop": 0.0}


@dataclass
class FrameWeights:
    """A weights parquet in memory.

    Args:
        path: the file read (None when built in memory).
        index: (N,) int64 global frame indices, unique.
        weight: (N,) float32 weights, finite and >= 0.
        provenance: where the weights come from (see the module docstring).
    """

    path: Path | None
    index: np.ndarray
    weight: np.ndarray
    provenance: dict[str, Any]


def _checked(index: np.ndarray, weight: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    index = np.asarray(index)
    weight = np.asarray(weight, dtype=np.float32)
    if index.ndim != 1 or index.shape != weight.shape:
        raise RewardkitError(f"{where}: index {index.shape} and weight {weight.shape} must be (N,) alike")
    if index.size == 0:
        raise RewardkitError(f"{where}: no frames")
    if not np.issubdtype(index.dtype, np.integer):
        raise RewardkitError(f"{where}: column 'index' must hold integers, got {index.dtype}")
    if int(index.min()) < 0 or np.unique(index).size != index.size:
        raise RewardkitError(f"{where}: column 'index' must hold distinct frame indices >= 0")
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise RewardkitError(
            f"{where}: weight of frame {int(index[np.argmax(bad)])} is {float(weight[bad][0])}; "
            "weights must be finite and >= 0"
        )
    if not weight.any():
        raise RewardkitError(f"{where}: every weight is 0; nothing would be trained on")
    return index.astype(np.int64, copy=False), weight


def write_weights_parquet(
    path: str | Path,
    index: np.ndarray,
    weight: np.ndarray,
    provenance: Mapping[str, Any],
    extra_columns: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a weights parquet (sorted by `index`) atomically; `provenance` (JSON-able) goes to the metadata.

    Raises:
        RewardkitError: shapes differ, indices repeat or are negative, a weight is NaN/inf/negative, or all
            weights are 0 (checked before anything is written).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    index, weight = _checked(index, weight, str(path))
    order = np.argsort(index, kind="stable")
    columns = {"index": index[order], "weight": weight[order]}
    for name, values in (extra_columns or {}).items():
        columns[name] = np.asarray(values)[order]
    meta = {"format_version": FORMAT_VERSION, **dict(provenance)}
    table = pa.table(columns).replace_schema_metadata({PROVENANCE_KEY: json.dumps(meta, sort_keys=True)})
    return atomic_write(path, lambda temporary: pq.write_table(table, temporary))


def read_weights_parquet(path: str | Path) -> FrameWeights:
    """Read and check a weights parquet.

    Raises:
        FileNotFoundError: no file.
        RewardkitError: not a weights parquet (no `index` / `weight` column), or bad values (see
            `write_weights_parquet`).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights parquet {path} not found (write one with `rewardkit weights` or `rewardkit curate "
            "--weights_output=PATH`)"
        )
    names = pq.read_schema(path).names
    missing = [c for c in ("index", "weight") if c not in names]
    if missing:
        raise RewardkitError(f"{path} is not a weights parquet: missing column(s) {missing}; it has {names}")
    table = pq.read_table(path, columns=["index", "weight"], use_threads=False)
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY.encode())
    try:
        provenance = json.loads(raw.decode()) if raw else {}
    except json.JSONDecodeError as error:
        raise RewardkitError(f"{path}: corrupt '{PROVENANCE_KEY}' metadata ({error})") from error
    index, weight = _checked(table.column("index").to_numpy(), table.column("weight").to_numpy(), str(path))
    return FrameWeights(path, index, weight, provenance)


def verdict_weights(
    verdicts: Mapping[int, str],
    frame_index: Mapping[int, np.ndarray],
    weights: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame weights from per-episode verdicts: every frame of an episode gets its verdict's weight.

    Args:
        verdicts: {episode_index: "keep" | "look" | "drop"}.
        frame_index: {episode_index: global frame indices (T,)}.
        weights: {verdict: weight}; default keep 1, look 1, drop 0.

    Returns:
        (index (N,), episode_index (N,), weight (N,) float32).
    """
    table = dict(DEFAULT_VERDICT_WEIGHTS if weights is None else weights)
    unknown = sorted({v for v in verdicts.values()} - set(table))
    if unknown:
        raise RewardkitError(f"no weight for verdict(s) {unknown}; give one for each of {sorted(table)}")
    episodes = sorted(verdicts)
    index = np.concatenate([np.asarray(frame_index[e], dtype=np.int64) for e in episodes])
    episode = np.concatenate([np.full(len(frame_index[e]), e, np.int64) for e in episodes])
    weight = np.concatenate([np.full(len(frame_index[e]), table[verdicts[e]], np.float32) for e in episodes])
    return index, episode, weight


class PrecomputedWeighter(SampleWeighter):
    """lerobot `SampleWeighter` over a weights parquet: a batch's weights are one gather by "index".

    Args:
        weights: the `FrameWeights` read.
        missing_weight: weight of a frame the file does not list; None (default): such a frame is an error.
        device: where batch weights are returned.
    """

    def __init__(
        self,
        weights: FrameWeights,
        missing_weight: float | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if missing_weight is not None and not (np.isfinite(missing_weight) and missing_weight >= 0):
            raise RewardkitError(f"missing_weight must be finite and >= 0, got {missing_weight}")
        self.path = weights.path
        self.provenance = weights.provenance
        self.missing_weight = missing_weight
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.num_frames = int(weights.index.size)
        self.mean_weight = float(weights.weight.mean())
        self.zero_share = float(np.mean(weights.weight == 0))
        # NaN marks a frame absent from the file (an error unless missing_weight is given)
        table = np.full(int(weights.index.max()) + 1, np.nan, dtype=np.float32)
        table[weights.index] = weights.weight
        self._by_index = torch.from_numpy(table).to(self.device)
        self.batches_weighted = 0

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        missing_weight: float | None = None,
        device: torch.device | str | None = None,
        dataset: Any = None,
    ) -> PrecomputedWeighter:
        """Read `path`; with `dataset` (a `RewardDataset`), refuse a file made for another dataset (the
        fingerprint in its provenance) or listing frames the dataset does not have."""
        weights = read_weights_parquet(path)
        if dataset is not None:
            check_weights_fit(weights, dataset)
        return cls(weights, missing_weight, device)

    def compute_batch_weights(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Weights (B,) of a batch by its "index" (B,); stats: mean_weight, zero_weight_share."""
        if "index" not in batch:
            raise RewardkitError("precomputed weights need the batch's global frame indices (key 'index')")
        index = torch.as_tensor(batch["index"], device=self._by_index.device).long().reshape(-1)
        inside = (index >= 0) & (index < self._by_index.numel())
        weights = torch.full(index.shape, float("nan"), device=self._by_index.device)
        weights[inside] = self._by_index[index[inside]]
        absent = torch.isnan(weights)
        if bool(absent.any()):
            if self.missing_weight is None:
                raise RewardkitError(
                    f"frame index {int(index[absent][0])} is not in weights file {self.path}; regenerate it "
                    "for this dataset or pass --sample_weighting.extra_params='{\"missing_weight\": 1.0}'"
                )
            weights[absent] = self.missing_weight
        self.batches_weighted += 1
        mean, zero = torch.stack([weights.mean(), (weights == 0).float().mean()]).tolist()
        return weights, {"mean_weight": mean, "zero_weight_share": zero}

    def get_stats(self) -> dict:
        """type, frames, mean weight, zero share, and the file's provenance."""
        return {
            "type": "precomputed",
            "path": str(self.path),
            "num_frames": self.num_frames,
            "mean_weight": self.mean_weight,
            "zero_share": self.zero_share,
            "provenance": self.provenance,
        }


def check_weights_fit(weights: FrameWeights, dataset: Any) -> None:
    """Refuse weights made for another dataset than `dataset` (a `RewardDataset`).

    Raises:
        RewardkitError: naming the file, when the fingerprint recorded in its provenance differs from the
            dataset's, or it lists a frame index beyond the dataset's frames.
    """
    from rewardkit.labelling.parquet import dataset_fingerprint

    expected = dataset_fingerprint(dataset)
    recorded = weights.provenance.get("dataset")
    if recorded and recorded.get("episodes_sha256") != expected["episodes_sha256"]:
        raise RewardkitError(
            f"{weights.path} was made for another dataset ({recorded.get('repo_id')} at {recorded.get('root')}, "
            f"{recorded.get('num_frames')} frames) than {dataset.root} ({expected['num_frames']} frames)"
        )
    if int(weights.index.max()) >= expected["num_frames"]:
        raise RewardkitError(
            f"{weights.path} lists frame index {int(weights.index.max())}, but {dataset.root} has "
            f"{expected['num_frames']} frames; was it made for another dataset?"
        )
