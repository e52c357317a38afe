"""Building the frozen-feature cache: decode each frame once, encode in batches, write float16 rows.

A producer thread decodes frames in order (`RewardDataset.iter_frames`, one seek per episode) into
batches on a bounded queue while the main thread encodes the previous batch: decoding (PyAV) and
encoding (torch) both release the GIL, so the build runs at about the encoder's own speed.

Batches are pinned to the episode: frames [0, B), [B, 2B), ... of each episode (B = batch_size), the
last one shorter, never mixing two episodes. An encoder's features can depend on the batch they are
computed in (kernels chosen by batch size: up to 5e-4 apart), so batch boundaries must not depend on
where a build started: a build resumed after a kill then encodes exactly the batches an uninterrupted
build does, and the cache is bit-identical.

Each batch's features go to their rows of `images/<camera>.npy` (global frame index). When a batch holds
the last frame of an episode, the rows are flushed and the episode's `.done` marker is written; the
manifest is written last. A killed build therefore resumes at the first unfinished episode, and readers
never use rows that were not flushed. A lock file keeps two builds of the same cache from interleaving.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewardkit.cache.store import (
    KEY,
    MANIFEST,
    TEXTS,
    FeatureCache,
    cache_folder_name,
    cache_key,
    camera_file_name,
    dataset_fingerprint,
    default_cache_root,
)
from rewardkit.data.dataset import DatasetError, RewardDataset
from rewardkit.encoders.base import FrozenEncoder
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

_QUEUE_BATCHES = 3  # decoded batches waiting for the encoder (bounds memory; 2 is enough to overlap)


@dataclass
class _Batch:
    """Frames of one camera ready to encode: frames (n, H, W, 3) uint8 for global rows `rows` (n,)."""

    camera: str
    frames: np.ndarray
    rows: np.ndarray
    finished_episodes: list[int] = field(default_factory=list)  # episodes whose last frame is in this batch


@dataclass
class BuildStats:
    """What a build did: frames encoded, seconds spent waiting for decoded frames and encoding."""

    frames: int = 0
    batches: int = 0
    episodes: int = 0
    decode_wait_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    total_s: float = 0.0
    decode_s: float = 0.0  # time the producer thread spent decoding (overlapped with encoding)


def cache_path_for(
    dataset: RewardDataset, encoder: FrozenEncoder, cache_dir: str | Path | None = None
) -> Path:
    """The folder the cache of (dataset, encoder) lives in, under `cache_dir` or the default cache root."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    key = cache_key(dataset_fingerprint(dataset), encoder.spec, encoder.image_size, encoder.dtype)
    return root / cache_folder_name(dataset.repo_id, key)


def build_cache(
    dataset: RewardDataset,
    encoder: FrozenEncoder,
    cameras: Sequence[str],
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    episodes: Sequence[int] | None = None,
    progress: bool = True,
    texts: Sequence[str] = (),
    stats: BuildStats | None = None,
) -> FeatureCache:
    """Encode every frame of `cameras` in the chosen episodes once, and the text of every task.

    Args:
        dataset: the dataset (its identity and video files key the cache: `dataset_fingerprint`).
        encoder: the frozen encoder (its `spec` and `image_size` key the cache).
        cameras: camera keys to encode; an unknown one is a `DatasetError` naming it and the dataset.
        cache_dir: root under which the cache folder is made (default `$REWARDKIT_CACHE` or
            `~/.cache/rewardkit/features`); the folder is `<cache_dir>/<dataset name>-<hash>`.
        batch_size: frames per encoder call.
        episodes: episodes to encode (default: the dataset's chosen episodes).
        progress: show a progress bar (stderr).
        texts: extra texts to encode besides the tasks (e.g. texts for language perturbation).
        stats: filled with timings when given.

    Returns:
        The `FeatureCache`. Episodes already encoded are skipped, so a second run does no encoding and a
        killed run resumes where it stopped.
    """
    start_time = time.perf_counter()
    stats = stats if stats is not None else BuildStats()
    cameras = list(dict.fromkeys(cameras))
    if not cameras:
        raise RewardkitError(f"no cameras chosen; dataset {dataset.root} has cameras {dataset.camera_keys}")
    for camera in cameras:
        if camera not in dataset.camera_keys:
            raise DatasetError(
                f"camera '{camera}' not in dataset {dataset.repo_id} at {dataset.root} "
                f"(cameras: {dataset.camera_keys})"
            )
    if batch_size < 1:
        raise RewardkitError(f"batch_size must be >= 1, got {batch_size}")
    episode_list = list(
        dict.fromkeys(int(e) for e in (dataset.episode_indices if episodes is None else episodes))
    )
    infos = {ep: dataset.episode(ep) for ep in episode_list}  # raises on an out-of-range episode
    path = cache_path_for(dataset, encoder, cache_dir)
    created = not path.exists()
    try:
        return _build_locked(
            path,
            dataset,
            encoder,
            cameras,
            episode_list,
            infos,
            batch_size,
            progress,
            texts,
            stats,
            start_time,
        )
    except BaseException:
        # A build that created the folder and finished no episode leaves nothing worth resuming: an
        # empty cache folder would only be a puzzle (and hold a zero-filled features file).
        if created:
            _remove_unfinished(path)
        raise


def _build_locked(
    path: Path,
    dataset: RewardDataset,
    encoder: FrozenEncoder,
    cameras: list[str],
    episode_list: list[int],
    infos: dict,
    batch_size: int,
    progress: bool,
    texts: Sequence[str],
    stats: BuildStats,
    start_time: float,
) -> FeatureCache:
    with _locked(path):
        _write_key(path, dataset, encoder)
        cache = FeatureCache(path)
        todo = {
            camera: [ep for ep in episode_list if ep not in cache.finished_episodes(camera)]
            for camera in cameras
        }
        wanted_texts = list(dict.fromkeys([t for ep in episode_list for t in infos[ep].tasks] + list(texts)))
        missing_texts = [t for t in wanted_texts if t not in set(cache.tasks)]
        if not any(todo.values()) and not missing_texts and cache.is_complete:
            logger.info("feature cache %s already holds everything asked for", path)
            stats.total_s = time.perf_counter() - start_time
            return cache
        (path / MANIFEST).unlink(missing_ok=True)  # the cache is being changed: not complete until the end
        if missing_texts:
            _write_texts(path, cache, encoder, missing_texts)
        frame_shapes = _record_frame_shapes(path, dataset, cameras)
        total = sum(infos[ep].length for camera in cameras for ep in todo[camera])
        if total:
            logger.info(
                "encoding %d frames (%s) of %d episode(s) with %s into %s",
                total, ", ".join(cameras), len(episode_list), encoder.spec, path,
            )  # fmt: skip
            _encode_frames(path, dataset, encoder, todo, infos, frame_shapes, cache.total_frames, batch_size,
                           progress, total, stats)  # fmt: skip
        cache.refresh()
        manifest = {
            "complete": True,
            "encoder_spec": encoder.spec,
            "feature_dim": encoder.feature_dim,
            "image_size": encoder.image_size,
            "cameras": {c: sorted(cache.finished_episodes(c)) for c in cache.cameras},
            "tasks": cache.tasks,
            "dataset_root": str(dataset.root),
        }
        atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=1))
    stats.total_s = time.perf_counter() - start_time
    return FeatureCache(path)


@contextmanager
def _locked(path: Path, create: bool = True) -> Iterator[None]:
    """Hold the cache folder's lock (made with the folder if missing and `create`) for the duration."""
    while True:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        lock = open(path / ".lock", "a")  # noqa: SIM115 (held across the yield below)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is building %s; waiting for it", path)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = os.stat(path / ".lock").st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(lock.fileno()).st_ino:
            break
        # The build we waited for failed and removed the folder: lock the new one.
        lock.close()
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _remove_unfinished(path: Path) -> None:
    """Remove a cache folder in which no episode was finished (under its lock, so no build is using it)."""
    try:
        with _locked(path, create=False):
            if any((path / "done").rglob("*.done")) or (path / MANIFEST).is_file():
                return
            logger.info("removing the unfinished feature cache %s", path)
            shutil.rmtree(path)
    except FileNotFoundError:
        pass


def _write_key(path: Path, dataset: RewardDataset, encoder: FrozenEncoder) -> None:
    total_episodes = int(dataset.meta.total_episodes)
    ranges = {}
    for ep in range(total_episodes):
        info = dataset.episode(ep)
        ranges[str(ep)] = [info.from_index, info.to_index]
    total_frames = max([int(dataset.meta.total_frames)] + [stop for _, stop in ranges.values()])
    key = cache_key(dataset_fingerprint(dataset), encoder.spec, encoder.image_size, encoder.dtype)
    key.update(feature_dim=int(encoder.feature_dim), total_frames=total_frames, episode_ranges=ranges)
    key_path = path / KEY
    if key_path.is_file():
        existing = json.loads(key_path.read_text())
        if existing == key:
            return
        raise DatasetError(
            f"feature cache {path} was made for different data (its key.json differs from this dataset and "
            f"encoder: frames or episodes changed?); delete the folder and rebuild"
        )
    atomic_write_text(key_path, json.dumps(key, indent=1))


def _record_frame_shapes(path: Path, dataset: RewardDataset, cameras: Sequence[str]) -> dict[str, list[int]]:
    shapes_path = path / "frame_shapes.json"
    shapes = json.loads(shapes_path.read_text()) if shapes_path.is_file() else {}
    changed = False
    for camera in cameras:
        shape = [int(s) for s in dataset.features[camera].get("shape", [])]
        if camera in shapes and shapes[camera] != shape:
            raise DatasetError(
                f"camera '{camera}' of dataset {dataset.root} now has frames of shape {shape}, the feature "
                f"cache {path} was built from {shapes[camera]}; delete the cache folder and rebuild"
            )
        if camera not in shapes:
            shapes[camera] = shape
            changed = True
    if changed:
        atomic_write_text(shapes_path, json.dumps(shapes, indent=1))
    return shapes


def _write_texts(path: Path, cache: FeatureCache, encoder: FrozenEncoder, new_texts: list[str]) -> None:
    tasks = cache.tasks
    old = np.stack([cache.text_features(t) for t in tasks]) if tasks else np.zeros((0, encoder.feature_dim))
    new = encoder.encode_texts(new_texts).numpy()
    features = np.concatenate([old.astype(np.float32), new.astype(np.float32)])
    all_tasks = np.array(tasks + list(new_texts), dtype=np.str_)
    atomic_write(path / TEXTS, lambda temporary: np.savez(temporary, tasks=all_tasks, features=features))
    cache.refresh()


def _open_image_file(path: Path, camera: str, total_frames: int, feature_dim: int) -> np.memmap:
    folder = path / "images"
    folder.mkdir(exist_ok=True)
    file = folder / f"{camera_file_name(camera)}.npy"
    if not file.is_file():
        # Created under a temporary name and renamed, so the file is either absent or whole-sized.
        shape = (total_frames, feature_dim)
        atomic_write(
            file, lambda temporary: np.lib.format.open_memmap(temporary, "w+", np.float16, shape).flush()
        )
    array = np.lib.format.open_memmap(file, mode="r+")
    if array.shape != (total_frames, feature_dim) or array.dtype != np.float16:
        raise DatasetError(
            f"corrupt feature cache file {file}: shape {array.shape} {array.dtype}; delete {path}"
        )
    return array


def _mark_done(path: Path, camera: str, episode_index: int) -> None:
    folder = path / "done" / camera_file_name(camera)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{episode_index}.done", "")


def _produce(
    dataset: RewardDataset,
    todo: dict[str, list[int]],
    infos: dict,
    frame_shapes: dict[str, list[int]],
    batch_size: int,
    out: queue.Queue,
    stop: threading.Event,
    stats: BuildStats,
) -> None:
    """Decode the frames to encode into batches on `out`; ends with None, or the exception raised."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for camera, episode_list in todo.items():
            if not episode_list:
                continue
            height, width, channels = _frame_hwc(frame_shapes[camera])
            buffer = np.empty((batch_size, height, width, channels), dtype=np.uint8)
            for ep in episode_list:
                info = infos[ep]
                filled = 0
                started = time.perf_counter()
                for frame_index, frame in enumerate(dataset.iter_frames(ep, camera)):
                    if frame.shape != buffer.shape[1:]:
                        raise DatasetError(
                            f"episode {ep} camera '{camera}' of {dataset.root} has frames of shape "
                            f"{frame.shape}, meta/info.json says {tuple(buffer.shape[1:])}"
                        )
                    buffer[filled] = frame
                    filled += 1
                    last = frame_index == info.length - 1
                    if filled == batch_size or last:
                        stats.decode_s += time.perf_counter() - started
                        first = info.from_index + frame_index + 1 - filled
                        batch = _Batch(camera, buffer[:filled].copy(), np.arange(first, first + filled),
                                       [ep] if last else [])  # fmt: skip
                        if not put(batch):
                            return
                        started = time.perf_counter()
                        filled = 0
                stats.decode_s += time.perf_counter() - started
                if info.length == 0 and not put(
                    _Batch(camera, buffer[:0].copy(), np.empty(0, np.int64), [ep])
                ):
                    return
        put(None)
    except BaseException as e:  # handed to the main thread, which re-raises it
        put(e)


def _frame_hwc(shape: list[int]) -> tuple[int, int, int]:
    # LeRobot stores video shapes as (H, W, C); older exports may say (C, H, W).
    if len(shape) == 3 and shape[-1] in (1, 3, 4):
        return shape[0], shape[1], 3
    if len(shape) == 3 and shape[0] in (1, 3, 4):
        return shape[1], shape[2], 3
    raise DatasetError(f"cannot read a frame shape (H, W, C) from {shape}")


def _encode_frames(
    path: Path,
    dataset: RewardDataset,
    encoder: FrozenEncoder,
    todo: dict[str, list[int]],
    infos: dict,
    frame_shapes: dict[str, list[int]],
    total_frames: int,
    batch_size: int,
    progress: bool,
    total: int,
    stats: BuildStats,
) -> None:
    from tqdm import tqdm

    arrays = {
        camera: _open_image_file(path, camera, total_frames, encoder.feature_dim)
        for camera, episode_list in todo.items()
        if episode_list
    }
    batches: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        args=(dataset, todo, infos, frame_shapes, batch_size, batches, stop, stats),
        name="rewardkit-decode",
        daemon=True,
    )
    bar = tqdm(total=total, unit="frame", desc="encoding", disable=not progress, dynamic_ncols=True)
    producer.start()
    try:
        while True:
            waited = time.perf_counter()
            item = batches.get()
            stats.decode_wait_s += time.perf_counter() - waited
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if len(item.rows):
                started = time.perf_counter()
                features = encoder.encode_images(item.frames)
                stats.encode_s += time.perf_counter() - started
                if tuple(features.shape) != (len(item.rows), encoder.feature_dim):
                    raise RewardkitError(
                        f"encoder {encoder.spec} returned features of shape {tuple(features.shape)} for "
                        f"{len(item.rows)} frames; expected ({len(item.rows)}, {encoder.feature_dim})"
                    )
                started = time.perf_counter()
                rows = item.rows
                array = arrays[item.camera]
                if rows[-1] - rows[0] == len(rows) - 1:  # contiguous (the usual case): one slice write
                    array[rows[0] : rows[-1] + 1] = features.numpy()
                else:
                    array[rows] = features.numpy()
                stats.write_s += time.perf_counter() - started
                stats.frames += len(rows)
                stats.batches += 1
                bar.update(len(rows))
            if item.finished_episodes:
                started = time.perf_counter()
                arrays[item.camera].flush()  # the rows reach the file before the marker says they did
                for ep in item.finished_episodes:
                    _mark_done(path, item.camera, ep)
                    stats.episodes += 1
                stats.write_s += time.perf_counter() - started
    finally:
        stop.set()
        producer.join(timeout=30)
        bar.close()
        for array in arrays.values():
            array.flush()
