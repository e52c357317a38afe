"""Dataset access over LeRobot's own classes.

`open_dataset` opens a LeRobot v3.0 dataset from a local folder (`root`, no network) and/or the hub
(`repo_id`). `RewardDataset` lists episodes, reads one episode's frames for one camera sequentially (each
frame decoded once, in order, from a single seek), and reads columns (state, action, ...) as arrays.

Everything above this layer (cache, labelling, training) reads frames only through `iter_frames` /
`read_frames`, so the "decode each frame once" rule lives in one place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from lerobot.utils.constants import OBS_STATE

from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)

ACTION_KEY = "action"


class DatasetError(RewardkitError):
    """A dataset cannot be opened or read; the message names the problem and the path or episode."""


@dataclass
class DatasetConfig:
    """Which LeRobot dataset to read (CLI: `--dataset.repo_id=... --dataset.root=...`).

    Args:
        repo_id: Hub id (`user/name`). With `root` set, only used as a name; without it, the dataset is
            looked up in the local LeRobot cache and downloaded when missing (needs the hub).
        root: Local dataset folder (the one holding `meta/info.json`). No network is needed.
        episodes: Episode indices to use (default: all).
        revision: Hub revision when downloading.
    """

    repo_id: str | None = None
    root: str | None = None
    episodes: list[int] | None = None
    revision: str | None = None


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode as listed in `meta/episodes`.

    `from_index`/`to_index` are global frame indices (the `index` column): the episode's frames are
    `from_index .. to_index - 1`.
    """

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    from_index: int
    to_index: int

    @property
    def task(self) -> str:
        return self.tasks[0] if self.tasks else ""


@dataclass
class RewardDataset:
    """A LeRobot v3.0 dataset as rewardkit reads it. Build it with `open_dataset`."""

    meta: object  # lerobot.datasets.dataset_metadata.LeRobotDatasetMetadata
    root: Path
    repo_id: str
    selected_episodes: list[int] | None = None
    _episode_rows: dict[int, dict] = field(default_factory=dict, repr=False)

    # ---- description -------------------------------------------------------------------------
    @property
    def fps(self) -> int:
        return int(self.meta.fps)

    @property
    def camera_keys(self) -> list[str]:
        return list(self.meta.camera_keys)

    @property
    def video_keys(self) -> list[str]:
        return list(self.meta.video_keys)

    @property
    def features(self) -> dict[str, dict]:
        return dict(self.meta.features)

    def names(self, key: str) -> list[str]:
        """Per-dimension names of a vector feature (e.g. the state's joint names)."""
        feature = self.features.get(key)
        if feature is None:
            raise DatasetError(
                f"feature '{key}' not in dataset {self.root} (features: {sorted(self.features)})"
            )
        names = feature.get("names")
        if isinstance(names, dict):  # {"motors": [...]} style
            names = next(iter(names.values()), None)
        if names is None:
            return [f"{key}_{i}" for i in range(int(np.prod(feature["shape"])))]
        return [str(n) for n in names]

    @property
    def state_names(self) -> list[str]:
        return self.names(OBS_STATE) if OBS_STATE in self.features else []

    @property
    def action_names(self) -> list[str]:
        return self.names(ACTION_KEY) if ACTION_KEY in self.features else []

    @cached_property
    def identity(self) -> str:
        """A string that changes when the dataset's content changes (used to key feature caches)."""
        info = self.meta.info
        to_dict = info.to_dict() if hasattr(info, "to_dict") else dict(info)
        return json.dumps(
            {
                "repo_id": self.repo_id,
                "total_frames": to_dict.get("total_frames"),
                "total_episodes": to_dict.get("total_episodes"),
                "fps": to_dict.get("fps"),
                "features": sorted(to_dict.get("features", {})),
            },
            sort_keys=True,
        )

    @cached_property
    def _episodes_table(self) -> dict[int, dict]:
        self.meta.ensure_readable() if hasattr(self.meta, "ensure_readable") else None
        table = self.meta.episodes
        if table is None:
            return {}
        rows = {}
        columns = [c for c in table.column_names if not c.startswith("stats/")]
        for row in table.select_columns(columns):
            rows[int(row["episode_index"])] = row
        return rows

    @property
    def episode_indices(self) -> list[int]:
        all_indices = sorted(self._episodes_table)
        if self.selected_episodes is None:
            return all_indices
        return [i for i in self.selected_episodes if i in self._episodes_table]

    def episode(self, episode_index: int) -> EpisodeInfo:
        row = self._row(episode_index)
        tasks = row.get("tasks") or []
        return EpisodeInfo(
            episode_index=int(episode_index),
            length=int(row["length"]),
            tasks=tuple(str(t) for t in tasks),
            from_index=int(row["dataset_from_index"]),
            to_index=int(row["dataset_to_index"]),
        )

    def episodes(self) -> list[EpisodeInfo]:
        return [self.episode(i) for i in self.episode_indices]

    def _row(self, episode_index: int) -> dict:
        table = self._episodes_table
        if episode_index not in table:
            raise DatasetError(
                f"episode {episode_index} out of range for dataset {self.root}: it has "
                f"{len(table)} episodes (indices {min(table, default=0)}..{max(table, default=-1)})"
            )
        return table[episode_index]

    def check_camera(self, camera_key: str) -> None:
        if camera_key not in self.camera_keys:
            raise DatasetError(
                f"unknown camera key '{camera_key}' for dataset {self.root}; cameras: {self.camera_keys}"
            )

    # ---- frames --------------------------------------------------------------------------------
    def video_path(self, episode_index: int, camera_key: str) -> Path:
        self.check_camera(camera_key)
        if camera_key not in self.video_keys:
            raise DatasetError(
                f"camera '{camera_key}' of dataset {self.root} is stored as images, not video; "
                "rewardkit reads video datasets (LeRobot's default)"
            )
        row = self._row(episode_index)
        path = self.root / self.meta.video_path.format(
            video_key=camera_key,
            chunk_index=row[f"videos/{camera_key}/chunk_index"],
            file_index=row[f"videos/{camera_key}/file_index"],
        )
        if not path.is_file():
            raise DatasetError(f"missing video file {path} (episode {episode_index}, camera '{camera_key}')")
        return path

    def iter_frames(self, episode_index: int, camera_key: str) -> Iterator[np.ndarray]:
        """Yield the episode's frames for one camera, in order, each decoded once.

        One seek to the keyframe before the episode's first frame, then straight decoding: no
        per-frame seeking. Yields `length` arrays of shape (H, W, 3), uint8 RGB.
        """
        import av

        path = self.video_path(episode_index, camera_key)
        row = self._row(episode_index)
        length = int(row["length"])
        from_ts = float(row[f"videos/{camera_key}/from_timestamp"])
        fps = self.fps
        half_frame = 0.5 / fps
        produced = 0
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                if from_ts > 0:
                    container.seek(
                        int(from_ts / stream.time_base), backward=True, any_frame=False, stream=stream
                    )
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    ts = float(frame.pts * stream.time_base)
                    local = int(round((ts - from_ts) * fps))
                    if ts < from_ts - half_frame:
                        continue
                    if local >= length:
                        break
                    if local != produced:
                        raise DatasetError(
                            f"video {path} has a gap or duplicate at episode {episode_index} frame {produced} "
                            f"(decoded timestamp {ts:.4f}s maps to frame {local})"
                        )
                    yield frame.to_ndarray(format="rgb24")
                    produced += 1
        except av.error.FFmpegError as e:
            raise DatasetError(f"cannot decode video {path} (episode {episode_index}): {e}") from e
        if produced != length:
            raise DatasetError(
                f"video {path} ended after {produced} of {length} frames of episode {episode_index} "
                f"(camera '{camera_key}'): the file is truncated or does not match meta/episodes"
            )

    def read_frames(self, episode_index: int, camera_key: str) -> np.ndarray:
        """All frames of one episode for one camera: (T, H, W, 3) uint8, decoded sequentially."""
        frames = list(self.iter_frames(episode_index, camera_key))
        return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), dtype=np.uint8)

    def read_frames_at(self, episode_index: int, camera_key: str, indices: Sequence[int]) -> np.ndarray:
        """The frames at `indices` (N,) of one episode: (N, H, W, 3) uint8, decoded in order up to the
        last one asked for and only those kept (a long episode is never held in memory whole)."""
        wanted = {int(i): position for position, i in enumerate(indices)}
        kept: list[np.ndarray] = [np.empty(0)] * len(wanted)
        last = max(wanted)
        for index, frame in enumerate(self.iter_frames(episode_index, camera_key)):
            if index in wanted:
                kept[wanted[index]] = frame
            if index >= last:
                break
        return np.stack(kept)

    # ---- columns -------------------------------------------------------------------------------
    def read_columns(self, episode_index: int, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Columns of one episode's rows as arrays, in frame order.

        Vector features come back as (T, D) float arrays, scalars as (T,). Unknown keys are an error.
        """
        import pyarrow.parquet as pq

        missing = [k for k in keys if k not in self._data_columns]
        if missing:
            raise DatasetError(
                f"column(s) {missing} not in dataset {self.root}; available: {sorted(self._data_columns)}"
            )
        row = self._row(episode_index)
        path = self.root / self.meta.data_path.format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if not path.is_file():
            raise DatasetError(f"missing data file {path} (episode {episode_index})")
        wanted = list(dict.fromkeys(["episode_index", "frame_index", *keys]))
        table = pq.read_table(path, columns=wanted, filters=[("episode_index", "=", int(episode_index))])
        order = np.argsort(table.column("frame_index").to_numpy())
        out: dict[str, np.ndarray] = {}
        for key in keys:
            column = table.column(key).combine_chunks()
            if hasattr(column.type, "value_type"):  # list / fixed-size list: one vector per frame
                array = np.asarray(column.to_pylist(), dtype=np.float32)
            else:
                array = column.to_numpy(zero_copy_only=False)
            out[key] = array[order]
        return out

    def check_finite(self, keys: Sequence[str], episodes: Sequence[int] | None = None) -> None:
        """Raise `DatasetError` naming the column, the episodes and the frame counts when a numeric
        column holds NaN or inf in `episodes` (default: the selected episodes). Call it before training
        or labelling starts, so a bad value is blamed on the data, not on a NaN loss or the model.

        Reads each data file once (only the named columns).
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        episodes = list(self.episode_indices if episodes is None else episodes)
        keys = [k for k in keys if k in self._data_columns]
        files: dict[Path, list[int]] = {}
        for ep in episodes:
            row = self._row(ep)
            path = self.root / self.meta.data_path.format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            files.setdefault(path, []).append(int(ep))
        bad: dict[str, dict[int, int]] = {}
        for path, wanted in files.items():
            if not path.is_file():
                raise DatasetError(f"missing data file {path} (episodes {wanted[:10]})")
            table = pq.read_table(path, columns=["episode_index", *keys])
            episode_index = table.column("episode_index").to_numpy()
            for key in keys:
                column = table.column(key).combine_chunks()
                if hasattr(column.type, "value_type"):
                    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
                    values = values.reshape(len(column), -1)
                    finite = np.isfinite(values).all(axis=1)
                elif pa.types.is_floating(column.type):
                    finite = np.isfinite(column.to_numpy(zero_copy_only=False))
                else:
                    continue
                for ep in wanted:
                    count = int((~finite[episode_index == ep]).sum())
                    if count:
                        bad.setdefault(key, {})[ep] = count
        if bad:
            parts = []
            for key, counts in bad.items():
                listed = ", ".join(f"episode {ep}: {n} frames" for ep, n in list(counts.items())[:10])
                more = f" and {len(counts) - 10} more episodes" if len(counts) > 10 else ""
                parts.append(f"column '{key}' has NaN/inf values ({listed}{more})")
            raise DatasetError(
                f"dataset {self.root}: " + "; ".join(parts) + ". Fix or leave out those episodes "
                "(--dataset.episodes=[...]) before training or labelling"
            )

    @cached_property
    def _data_columns(self) -> set[str]:
        return {k for k, v in self.features.items() if v.get("dtype") not in ("video", "image")}

    def episode_task_texts(self) -> dict[int, str]:
        return {ep.episode_index: ep.task for ep in self.episodes()}


def open_dataset(
    repo_id: str | None = None,
    root: str | Path | None = None,
    episodes: Sequence[int] | None = None,
    revision: str | None = None,
) -> RewardDataset:
    """Open a LeRobot v3.0 dataset from a local folder and/or the hub.

    Raises `DatasetError` naming the path when `meta/info.json` is missing, the dataset is of an older
    format (with the command that converts it), or an episode index is out of range.
    """
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    if repo_id is None and root is None:
        raise DatasetError("give --dataset.repo_id (hub) and/or --dataset.root (local folder)")
    if root is not None:
        root = Path(root).expanduser()
        info_path = root / "meta" / "info.json"
        if not root.exists():
            raise DatasetError(
                f"no such dataset folder {root} (--dataset.root); a hub dataset goes in --dataset.repo_id"
            )
        if not info_path.is_file():
            raise DatasetError(f"not a LeRobot dataset: missing {info_path}")
        _check_version(info_path, repo_id or root.name)
        repo_id = repo_id or root.name
    try:
        meta = LeRobotDatasetMetadata(repo_id, root=root, revision=revision)
    except DatasetError:
        raise
    except HUB_LOOKUP_ERRORS as e:  # a path typed as a repo id lands here too
        raise DatasetError(
            hub_lookup_message("dataset", repo_id, e, "a local folder goes in --dataset.root=PATH")
        ) from e
    except FileNotFoundError as e:
        raise DatasetError(f"cannot open dataset {repo_id!r} (root={root}): {e}") from e
    except Exception as e:  # lerobot raises its own compatibility errors for old formats
        if "BackwardCompatibility" in type(e).__name__ or "codebase" in str(e).lower():
            raise DatasetError(_conversion_message(repo_id, str(root or repo_id))) from e
        if _is_corrupt_file_error(e):
            where = Path(root) / "meta" if root is not None else repo_id
            raise DatasetError(
                f"cannot read the metadata of dataset {repo_id!r} in {where}: a corrupt parquet file "
                f"(meta/episodes/*.parquet or meta/tasks.parquet): {type(e).__name__}: {e}"
            ) from e
        raise
    resolved_root = Path(meta.root)
    _check_version(resolved_root / "meta" / "info.json", repo_id)
    dataset = RewardDataset(meta=meta, root=resolved_root, repo_id=repo_id)
    if episodes is not None:
        for ep in episodes:
            dataset._row(int(ep))  # raises with the valid range
        dataset.selected_episodes = [int(e) for e in episodes]
    return dataset


def _hub_lookup_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    return (
        errors.OfflineModeIsEnabled,
        errors.LocalEntryNotFoundError,
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
    )


HUB_LOOKUP_ERRORS = _hub_lookup_errors()


def hub_lookup_message(what: str, name: str | Path, error: BaseException, local_hint: str = "") -> str:
    """The message for a name that is no local folder and could not be found on the hub (offline, or
    no such repo): says both (and `local_hint`, e.g. which flag takes a local folder)."""
    from huggingface_hub import constants, errors

    offline = constants.HF_HUB_OFFLINE or isinstance(
        error, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)
    )
    where = Path(name).expanduser().absolute()
    if offline:
        hub = "the hub was not asked (offline: HF_HUB_OFFLINE is set) and it is not in the local hub cache"
    elif isinstance(error, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)):
        hub = "the hub has no such repo (or it is private: log in with `hf auth login`)"
    else:
        hub = f"the hub could not be asked ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    return (
        f"{what} {str(name)!r}: no such folder ({where}), and not a hub repo: {hub}. "
        f"Check the path{f' ({local_hint})' if local_hint else ''}"
    )


def open_from_config(cfg: DatasetConfig) -> RewardDataset:
    return open_dataset(cfg.repo_id, cfg.root, cfg.episodes, cfg.revision)


def _check_version(info_path: Path, name: str) -> None:
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"corrupt {info_path}: {e}") from e
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(_conversion_message(name, str(info_path.parent.parent), version))


def _conversion_message(name: str, where: str, version: str = "older") -> str:
    return (
        f"dataset {name} at {where} is in LeRobot format {version}; rewardkit reads v3.0. Convert it with "
        f"lerobot's converter: python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id={name}"
    )


def _is_corrupt_file_error(error: BaseException) -> bool:
    """A parquet/arrow read error (a corrupt, not a missing, file)."""
    import pyarrow as pa

    return isinstance(error, (pa.ArrowException, OSError)) and not isinstance(error, FileNotFoundError)
