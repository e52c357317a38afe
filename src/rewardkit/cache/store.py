"""Reading the frozen-feature cache, and where caches live.

A cache is one folder per (dataset identity and video files, encoder spec, encoder image size), under the cache root
(`cache_dir`, else `$REWARDKIT_CACHE`, else `~/.cache/rewardkit/features`), named `<dataset>-<hash>`:

    key.json                   what the folder is for (written first, atomically)
    images/<camera>.npy        (N_frames, D) float16, rows = the dataset's global frame `index`
    frame_shapes.json          camera -> the (H, W, C) of its frames when encoded
    done/<camera>/<ep>.done    one empty marker per finished episode, written after its rows are flushed
    texts.npz                  `tasks` (K,) str and `features` (K, D) float32
    manifest.json              written last, atomically: cameras, their episodes, tasks -> complete

Reading never trusts rows without a `.done` marker (or a manifest listing the episode), so a build killed
at any point leaves a cache that is either usable for the episodes it finished or resumable, never
silently wrong. Image features are memory-mapped: training reads the rows it needs from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewardkit.data.dataset import DatasetError

# 2: images preprocessed by transformers' CLIPImageProcessor (what lerobot's SARM uses), not our own resize.
FORMAT_VERSION = 3  # 3: the encoder compute dtype is part of the key
MANIFEST = "manifest.json"
KEY = "key.json"
TEXTS = "texts.npz"


def default_cache_root() -> Path:
    """`$REWARDKIT_CACHE` if set, else `~/.cache/rewardkit/features`."""
    env = os.environ.get("REWARDKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rewardkit" / "features"


def dataset_fingerprint(dataset) -> str:
    """`RewardDataset.identity` plus the size and modification time of every video file.

    The identity alone (name, frame and episode counts, feature names) cannot tell apart two datasets of
    the same name and shape (two synthetic sets with different seeds); the video files can. Metadata files
    are left out on purpose: writing annotations into `meta/` must not throw the features away.
    """
    videos = Path(dataset.root) / "videos"
    entries = []
    if videos.is_dir():
        for file in sorted(videos.rglob("*")):
            if file.is_file():
                stat = file.stat()
                entries.append([str(file.relative_to(videos)), stat.st_size, stat.st_mtime_ns])
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:32]
    return f"{dataset.identity}|videos:{digest}"


def dtype_name(dtype) -> str:
    """ "float32" for torch.float32 or "float32" (the encoder's compute dtype, as stored in key.json)."""
    return str(dtype).removeprefix("torch.")


def cache_key(dataset_identity: str, encoder_spec: str, image_size: int, encoder_dtype) -> dict:
    """The identity of a cache folder (stored in its key.json). Features encoded in bfloat16 differ from
    float32 ones, so the encoder's compute dtype is part of it."""
    return {
        "format_version": FORMAT_VERSION,
        "dataset_identity": dataset_identity,
        "encoder_spec": encoder_spec,
        "encoder_dtype": dtype_name(encoder_dtype),
        "image_size": int(image_size),
    }


def cache_folder_name(dataset_name: str, key: dict) -> str:
    """`<dataset name>-<16 hex digits of the key's hash>`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_name).strip("_.") or "dataset"
    return f"{name[:60]}-{digest}"


def camera_file_name(camera: str) -> str:
    """A file-system-safe name for a camera key (`observation.images.top` stays as is)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", camera)


class FeatureCache:
    """A frozen-feature cache folder, read through memory maps.

    Build one with `rewardkit.cache.build_cache`; open an existing one with `FeatureCache.open(path)` or
    find it with `FeatureCache.for_dataset(dataset, encoder_spec, cameras)`.

    Attributes:
        path: the cache folder.
        encoder_spec, encoder_dtype, image_size, feature_dim: the encoder that made the features.
        dataset_identity: `dataset_fingerprint` of the dataset encoded (identity + video files).
        cameras: cameras with at least one finished episode.
        tasks: task texts with text features.
        is_complete: the last build finished (its manifest was written).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        key_path = self.path / KEY
        if not key_path.is_file():
            raise DatasetError(f"not a rewardkit feature cache: missing {key_path}")
        key = _read_json(key_path)
        if key.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"feature cache {self.path} has format {key.get('format_version')}, this rewardkit reads "
                f"{FORMAT_VERSION}; delete the folder and rebuild it with `rewardkit cache`"
            )
        self.key = key
        self.dataset_identity: str = key["dataset_identity"]
        self.encoder_spec: str = key["encoder_spec"]
        self.encoder_dtype: str = key["encoder_dtype"]
        self.image_size: int = int(key["image_size"])
        self.feature_dim: int = int(key["feature_dim"])
        self.total_frames: int = int(key["total_frames"])
        self._episode_ranges: dict[int, tuple[int, int]] = {
            int(ep): (int(start), int(stop)) for ep, (start, stop) in key["episode_ranges"].items()
        }
        manifest_path = self.path / MANIFEST
        self.manifest: dict | None = _read_json(manifest_path) if manifest_path.is_file() else None
        self._memmaps: dict[str, np.memmap] = {}
        self._texts: dict[str, np.ndarray] | None = None
        self.refresh()

    @classmethod
    def open(cls, path: str | Path) -> FeatureCache:
        """Open the cache folder at `path` (raises `DatasetError` if it is not one)."""
        return cls(path)

    @classmethod
    def for_dataset(
        cls,
        dataset,
        encoder_spec: str,
        cameras: Sequence[str],
        image_size: int | None = None,
        cache_dir: str | Path | None = None,
        encoder_dtype=None,
        episodes: Sequence[int] | None = None,
    ) -> FeatureCache | None:
        """The existing cache of `dataset` encoded by `encoder_spec` holding every episode of `episodes`
        (default: the chosen episodes) of every camera in `cameras`, or None if there is none (build it
        with `build_cache`).

        `image_size` (the encoder's input resolution) and `encoder_dtype` (its compute dtype, a torch dtype
        or its name) narrow the search; None accepts any.
        """
        from rewardkit.encoders import canonical_spec

        spec = canonical_spec(encoder_spec)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        if not root.is_dir():
            return None
        episodes = dataset.episode_indices if episodes is None else list(episodes)
        fingerprint = dataset_fingerprint(dataset)
        for candidate in sorted(root.glob("*/" + KEY)):
            try:
                key = _read_json(candidate)
            except DatasetError:
                continue
            if key.get("format_version") != FORMAT_VERSION or key.get("encoder_spec") != spec:
                continue
            if key.get("dataset_identity") != fingerprint:
                continue
            if image_size is not None and int(key.get("image_size", -1)) != int(image_size):
                continue
            if encoder_dtype is not None and key.get("encoder_dtype") != dtype_name(encoder_dtype):
                continue
            cache = cls(candidate.parent)
            if cache.covers(cameras, episodes):
                return cache
        return None

    # ---- state -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read which episodes are finished (after a build added some)."""
        finished: dict[str, set[int]] = {}
        done_root = self.path / "done"
        camera_names = self._camera_names()
        for camera, file_name in camera_names.items():
            folder = done_root / file_name
            if folder.is_dir():
                finished[camera] = {int(p.stem) for p in folder.glob("*.done")}
        if self.manifest is not None:
            for camera, episodes in self.manifest["cameras"].items():
                finished.setdefault(camera, set()).update(int(e) for e in episodes)
        self._finished = {c: eps for c, eps in finished.items() if eps}
        self._texts = None

    def _camera_names(self) -> dict[str, str]:
        shapes_path = self.path / "frame_shapes.json"
        cameras = _read_json(shapes_path) if shapes_path.is_file() else {}
        return {camera: camera_file_name(camera) for camera in cameras}

    @property
    def is_complete(self) -> bool:
        """True when the last build finished: every episode it was asked for is encoded, texts included."""
        return self.manifest is not None and bool(self.manifest.get("complete"))

    @property
    def cameras(self) -> list[str]:
        return sorted(self._finished)

    @property
    def episode_indices(self) -> list[int]:
        """Episodes finished for every camera of the cache."""
        if not self._finished:
            return []
        return sorted(set.intersection(*self._finished.values()))

    def finished_episodes(self, camera: str) -> set[int]:
        """Episodes whose features for `camera` are written and flushed."""
        return set(self._finished.get(camera, set()))

    def covers(self, cameras: Sequence[str], episodes: Sequence[int]) -> bool:
        """Whether every episode in `episodes` is finished for every camera in `cameras` (texts included)."""
        if not (self.path / TEXTS).is_file():
            return False
        return all(set(episodes) <= self._finished.get(camera, set()) for camera in cameras)

    def episode_range(self, episode_index: int) -> tuple[int, int]:
        """(from_index, to_index) of an episode in the global frame index."""
        if episode_index not in self._episode_ranges:
            raise DatasetError(f"episode {episode_index} is not in the dataset of feature cache {self.path}")
        return self._episode_ranges[episode_index]

    # ---- features --------------------------------------------------------------------------------
    def image_features(self, camera: str) -> np.memmap:
        """(N_frames, D) float16 read-only memory map over the global frame index.

        Only rows of finished episodes (`finished_episodes(camera)`) hold features.
        """
        if camera not in self._finished:
            raise DatasetError(
                f"camera '{camera}' is not in feature cache {self.path} (cameras: {self.cameras}); "
                f"build it with `rewardkit cache --cameras=[{camera}]`"
            )
        if camera not in self._memmaps:
            path = self.path / "images" / f"{camera_file_name(camera)}.npy"
            array = np.load(path, mmap_mode="r")
            if array.shape != (self.total_frames, self.feature_dim) or array.dtype != np.float16:
                raise DatasetError(
                    f"corrupt feature cache file {path}: shape {array.shape} {array.dtype}, expected "
                    f"({self.total_frames}, {self.feature_dim}) float16; delete {self.path} and rebuild"
                )
            self._memmaps[camera] = array
        return self._memmaps[camera]

    def episode_features(self, episode_index: int, camera: str) -> np.ndarray:
        """(T, D) float16 view of one episode's image features (memory-mapped)."""
        features = self.image_features(camera)
        if episode_index not in self._finished[camera]:
            raise DatasetError(
                f"episode {episode_index} of camera '{camera}' is not encoded in feature cache {self.path}; "
                "run `rewardkit cache` for it"
            )
        start, stop = self.episode_range(episode_index)
        return features[start:stop]

    def _load_texts(self) -> dict[str, np.ndarray]:
        if self._texts is None:
            path = self.path / TEXTS
            if not path.is_file():
                self._texts = {}
            else:
                with np.load(path, allow_pickle=False) as data:
                    tasks = [str(t) for t in data["tasks"]]
                    features = np.asarray(data["features"], dtype=np.float32)
                self._texts = dict(zip(tasks, features, strict=True))
        return self._texts

    @property
    def tasks(self) -> list[str]:
        return list(self._load_texts())

    def text_features(self, task: str) -> np.ndarray:
        """(D,) float32 text features of a task text."""
        texts = self._load_texts()
        if task not in texts:
            raise KeyError(
                f"task {task!r} has no text features in feature cache {self.path} "
                f"({len(texts)} tasks cached); encode it with the encoder '{self.encoder_spec}' "
                "or rebuild the cache with `build_cache(..., texts=[...])`"
            )
        return texts[task]

    def __getstate__(self) -> dict:
        # Memory maps would be pickled by value (the whole array) into DataLoader workers: reopen instead.
        state = dict(self.__dict__)
        state["_memmaps"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.path)!r}, encoder={self.encoder_spec!r}, cameras={self.cameras}, "
            f"episodes={len(self.episode_indices)}, complete={self.is_complete})"
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read feature cache file {path}: {e}") from e
