"""Building the frozen-feature cache: decode each frame once, encode in batches, write float16 rows.

A producer thread decodes frames in order (`RewardDataset.iter_frames`, one seek per episode) into
batches on a bounded queue while the main thread encodes the previous batch: decoding (PyAV) and
encoding (torch) both release the GIL, so the build runs at about the encoder's own speed. When the
encoder runs on a CUDA device the producer hands it page-locked (pinned) frames, so the copy to the
device can overlap the previous batch's compute; on a CPU nothing changes.

Batches are pinned to the episode: frames [0, B), [B, 2B), ... of each episode (B = batch_size), the
last one shorter, never mixing two episodes. An encoder's features can depend on the batch they are
computed in (kernels chosen by batch size: up to 5e-4 apart), so batch boundaries must not depend on
where a build started, nor on which worker encoded the episode: a resumed or sharded build encodes
exactly the batches an uninterrupted one-process build does, and the cache is bit-identical.

Work happens in episode shards. A sharded worker writes each finished (camera, episode) atomically as
a part, `parts/<camera>/<episode>.npy`; a part or a `.done` marker means the episode is never encoded
again, so a killed build (or worker) resumes at its first unfinished episode. Merging copies parts into
their rows of `images/<camera>.npy` (global frame index), flushes, writes the `.done` markers and removes
the parts, under the cache's lock; the manifest is written last. A single-process build writes each
episode's rows the same way (under the lock, then its marker) as it finishes, without the part. Sharded workers (`ShardState`: `accelerate launch`, datatrove tasks) only write parts,
and one process merges them all (`merge_cache`), so two machines never write the same features file.
Two builders started on the same cache at once both skip what the other finished and never corrupt it.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from rewardkit.distributed.shards import ShardState, shard_episodes
from rewardkit.encoders.base import FrozenEncoder
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

PARTS = "parts"  # per-episode features waiting to be merged: parts/<camera>/<episode>.npy
_QUEUE_BATCHES = 3  # decoded batches waiting for the encoder (bounds memory; 2 is enough to overlap)


@dataclass
class _Batch:
    """Frames of one camera and episode ready to encode: frames (n, H, W, 3) uint8 (numpy, or a pinned
    torch tensor for a CUDA encoder) for positions `positions` (n,) of the episode."""

    camera: str
    episode: int
    frames: Any
    positions: np.ndarray
    last: bool = False  # the episode's last frame is in this batch


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
    shard: ShardState | None = None,
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
        shard: this worker's share when several share the build (`shard_episodes` of `episodes`). With a
            `barrier` (accelerate) the workers meet after encoding, the main one merges every part and
            all return the whole cache; without one (datatrove tasks) a worker writes its parts and
            returns, and `merge_cache` (one task, after all of them) merges.

    Returns:
        The `FeatureCache`. Episodes already encoded are skipped, so a second run does no encoding and a
        killed run resumes where it stopped.
    """
    start_time = time.perf_counter()
    stats = stats if stats is not None else BuildStats()
    shard = shard or ShardState()
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
    mine = [e.episode_index for e in shard_episodes(list(infos.values()), shard.process_index,
                                                     shard.num_processes)]  # fmt: skip
    path = cache_path_for(dataset, encoder, cache_dir)
    created = not path.exists()
    try:
        cache = _build_shard(path, dataset, encoder, cameras, episode_list, mine, infos, batch_size, progress,
                             texts, stats, merge=not shard.is_sharded)  # fmt: skip
    except BaseException:
        # A single build that created the folder and finished no episode leaves nothing worth resuming:
        # an empty cache folder would only be a puzzle. Sharded workers leave it to the others.
        if created and not shard.is_sharded:
            _remove_unfinished(path)
        raise
    if shard.is_sharded:
        if shard.barrier is None:  # an independent task: the merge step comes after every task
            stats.total_s = time.perf_counter() - start_time
            return FeatureCache(path)
        shard.barrier()
        if shard.is_main_process:
            merge_cache(path, cameras, episode_list, dataset_root=dataset.root)
        shard.barrier()
    elif cache is None:
        merge_cache(path, cameras, episode_list, dataset_root=dataset.root)
    stats.total_s = time.perf_counter() - start_time
    return FeatureCache(path)


def _build_shard(
    path: Path,
    dataset: RewardDataset,
    encoder: FrozenEncoder,
    cameras: list[str],
    episode_list: list[int],
    mine: list[int],
    infos: dict,
    batch_size: int,
    progress: bool,
    texts: Sequence[str],
    stats: BuildStats,
    merge: bool,
) -> FeatureCache | None:
    """Encode this worker's unfinished episodes into parts (merged as they finish when `merge`).

    Returns the cache when it already held everything asked for (nothing to merge), else None.
    """
    with _locked(path):  # short: the key, the texts and the frame shapes are shared by every worker
        _write_key(path, dataset, encoder)
        cache = FeatureCache(path)
        # Every worker asks for the texts of every episode (not only its own): the first one to take the
        # lock encodes them all, in the same order whatever the number of workers.
        wanted_texts = list(dict.fromkeys([t for ep in episode_list for t in infos[ep].tasks] + list(texts)))
        missing_texts = [t for t in wanted_texts if t not in set(cache.tasks)]
        todo = {
            camera: [ep for ep in mine if not _is_finished(path, cache, camera, ep)] for camera in cameras
        }
        if not any(todo.values()) and not missing_texts and cache.is_complete:
            logger.info("feature cache %s already holds everything asked for", path)
            return cache
        (path / MANIFEST).unlink(missing_ok=True)  # the cache is being changed: not complete until the end
        if missing_texts:
            _write_texts(path, cache, encoder, missing_texts)
        frame_shapes = _record_frame_shapes(path, dataset, cameras)
    total = sum(infos[ep].length for camera in cameras for ep in todo[camera])
    if total:
        logger.info(
            "encoding %d frames (%s) of %d episode(s) with %s into %s",
            total, ", ".join(cameras), len(mine), encoder.spec, path,
        )  # fmt: skip
        _encode_frames(path, dataset, encoder, todo, infos, frame_shapes, batch_size, progress, total, stats,
                       merge)  # fmt: skip
    return None


def merge_cache(
    path: str | Path,
    cameras: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    dataset_root: str | Path | None = None,
) -> FeatureCache:
    """Merge every part of the cache folder at `path` into its features files and write the manifest.

    Parts are merged in (camera, episode) order under the cache's lock; an episode's rows depend only on
    its part, so the files are byte-identical whatever the number of workers or the order they
    finished in. With `cameras` and `episodes`, every one of them must be finished (a worker that
    died leaves its episodes missing: rerun it, then merge again). `dataset_root` is recorded in the
    manifest. Returns the complete `FeatureCache`.

    Raises:
        RewardkitError: naming the cameras and episodes no worker finished.
    """
    path = Path(path)
    if not (path / KEY).is_file():
        raise DatasetError(
            f"not a rewardkit feature cache: missing {path / KEY} (run the cache workers first)"
        )
    with _locked(path, create=False):
        cache = FeatureCache(path)
        _merge_parts(path, cache)
        for folder in sorted((path / PARTS).glob("*")):  # emptied by the merge
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if (path / PARTS).is_dir() and not any((path / PARTS).iterdir()):
            (path / PARTS).rmdir()
        cache.refresh()
        if cameras is not None and episodes is not None:
            missing = {c: sorted(set(episodes) - cache.finished_episodes(c)) for c in cameras}
            missing = {c: eps for c, eps in missing.items() if eps}
            if missing:
                described = "; ".join(f"'{c}': episodes {eps[:20]}" for c, eps in missing.items())
                raise RewardkitError(
                    f"feature cache {path} is missing {described}: a worker did not finish; rerun the "
                    "cache workers (finished episodes are kept), then merge again"
                )
        manifest = {
            "complete": True,
            "encoder_spec": cache.encoder_spec,
            "feature_dim": cache.feature_dim,
            "image_size": cache.image_size,
            "cameras": {c: sorted(cache.finished_episodes(c)) for c in cache.cameras},
            "tasks": cache.tasks,
            "dataset_root": str(dataset_root) if dataset_root is not None else None,
        }
        atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=1))
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
            if (
                any((path / "done").rglob("*.done"))
                or any((path / PARTS).rglob("*.npy"))
                or (path / MANIFEST).is_file()
            ):
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


def _part_path(path: Path, camera: str, episode_index: int) -> Path:
    return path / PARTS / camera_file_name(camera) / f"{episode_index}.npy"


def _done_path(path: Path, camera: str, episode_index: int) -> Path:
    return path / "done" / camera_file_name(camera) / f"{episode_index}.done"


def _is_finished(path: Path, cache: FeatureCache, camera: str, episode_index: int) -> bool:
    """Encoded by this build or another one: merged (a `.done` marker) or waiting as a part."""
    return (
        episode_index in cache.finished_episodes(camera)
        or _done_path(path, camera, episode_index).is_file()
        or _part_path(path, camera, episode_index).is_file()
    )


def _write_part(path: Path, camera: str, episode_index: int, features: np.ndarray) -> None:
    """One episode's (T, D) float16 features, written atomically: a part is whole or absent."""
    part = _part_path(path, camera, episode_index)
    part.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(part, lambda temporary: np.save(temporary, features))


def _merge_parts(path: Path, cache: FeatureCache, only: Sequence[tuple[str, int]] | None = None) -> int:
    """Copy parts into their rows of the features files (caller holds the lock); returns how many.

    Order of safety: rows are written and flushed, then the `.done` markers, then the parts removed; a
    crash in between leaves a part that is merged again (same bytes) by the next merge.
    """
    names = {camera_file_name(c): c for c in _recorded_cameras(path)}
    if only is not None:
        found = [(c, ep, _part_path(path, c, ep)) for c, ep in only]
    else:
        found = []
        for folder in sorted((path / PARTS).glob("*")) if (path / PARTS).is_dir() else []:
            camera = names.get(folder.name)
            if camera is None:
                raise DatasetError(f"feature cache {path} has parts of an unknown camera {folder}; delete it")
            episodes = sorted(int(p.stem) for p in folder.glob("*.npy") if p.stem.isdigit())
            found += [(camera, ep, folder / f"{ep}.npy") for ep in episodes]
    merged = 0
    for camera in dict.fromkeys(c for c, _, _ in found):
        parts = [(ep, part) for c, ep, part in found if c == camera and part.is_file()]
        if parts:
            _write_rows(path, cache, camera, [(ep, np.load(part), part) for ep, part in parts])
            for _, part in parts:
                part.unlink()
            merged += len(parts)
    return merged


def _write_rows(
    path: Path, cache: FeatureCache, camera: str, episodes: Sequence[tuple[int, np.ndarray, Any]]
) -> None:
    """Write (episode, (T, D) float16 features, where they came from) into the camera's features file,
    flush, then mark the episodes done (caller holds the lock)."""
    array = _open_image_file(path, camera, cache.total_frames, cache.feature_dim)
    for ep, features, source in episodes:
        start, stop = cache.episode_range(ep)
        if features.shape != (stop - start, cache.feature_dim) or features.dtype != np.float16:
            raise DatasetError(
                f"feature cache part {source} holds {features.shape} {features.dtype}, episode {ep} needs "
                f"({stop - start}, {cache.feature_dim}) float16; delete the part and rerun the build"
            )
        array[start:stop] = features
    array.flush()  # the rows reach the file before the markers say they did
    del array
    for ep, _, _ in episodes:
        _mark_done(path, camera, ep)


def _recorded_cameras(path: Path) -> list[str]:
    shapes_path = path / "frame_shapes.json"
    return list(json.loads(shapes_path.read_text())) if shapes_path.is_file() else []


def _mark_done(path: Path, camera: str, episode_index: int) -> None:
    marker = _done_path(path, camera, episode_index)
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, "")


def _pinned(frames: np.ndarray, device: Any) -> Any:
    """`frames` in page-locked memory when the encoder runs on CUDA (its copy to the device can then run
    asynchronously, `non_blocking=True`); unchanged otherwise (a CPU encoder gains nothing from it)."""
    import torch

    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return frames
    return torch.from_numpy(frames).pin_memory()


def _produce(
    path: Path,
    dataset: RewardDataset,
    device: Any,
    todo: dict[str, list[int]],
    infos: dict,
    frame_shapes: dict[str, list[int]],
    batch_size: int,
    out: queue.Queue,
    stop: threading.Event,
    stats: BuildStats,
) -> None:
    """Decode the frames to encode into batches on `out`; ends with None, or the exception raised.

    An episode another builder finished meanwhile (its part or marker appeared) is skipped, so two
    builders started on the same cache share the work instead of both doing all of it.
    """

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
                if _part_path(path, camera, ep).is_file() or _done_path(path, camera, ep).is_file():
                    put(_Batch(camera, ep, buffer[:0].copy(), np.empty(0, np.int64), last=True))
                    continue
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
                        first = frame_index + 1 - filled
                        frames = _pinned(buffer[:filled].copy(), device)
                        stats.decode_s += time.perf_counter() - started
                        if not put(_Batch(camera, ep, frames, np.arange(first, first + filled), last)):
                            return
                        started = time.perf_counter()
                        filled = 0
                stats.decode_s += time.perf_counter() - started
                if info.length == 0 and not put(
                    _Batch(camera, ep, buffer[:0].copy(), np.empty(0, np.int64), True)
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
    batch_size: int,
    progress: bool,
    total: int,
    stats: BuildStats,
    merge: bool,
) -> None:
    """Encode the batches the producer decodes; each finished episode becomes a part (merged at once
    when `merge`)."""
    from tqdm import tqdm

    batches: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        args=(path, dataset, encoder.device, todo, infos, frame_shapes, batch_size, batches, stop, stats),
        name="rewardkit-decode",
        daemon=True,
    )
    bar = tqdm(total=total, unit="frame", desc="encoding", disable=not progress, dynamic_ncols=True)
    episode_features: np.ndarray | None = None  # the episode being encoded: (T, D) float16
    cache = FeatureCache(path)  # the frame layout (key.json) the parts are merged by
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
            positions = item.positions
            if len(positions) and positions[0] == 0:
                episode_features = np.empty((infos[item.episode].length, encoder.feature_dim), np.float16)
            if len(positions):
                started = time.perf_counter()
                features = encoder.encode_images(item.frames)
                stats.encode_s += time.perf_counter() - started
                if tuple(features.shape) != (len(positions), encoder.feature_dim):
                    raise RewardkitError(
                        f"encoder {encoder.spec} returned features of shape {tuple(features.shape)} for "
                        f"{len(positions)} frames; expected ({len(positions)}, {encoder.feature_dim})"
                    )
                episode_features[positions[0] : positions[-1] + 1] = features.numpy()
                stats.frames += len(positions)
                stats.batches += 1
                bar.update(len(positions))
            if item.last:
                started = time.perf_counter()
                encoded = len(positions) or infos[item.episode].length == 0  # else skipped: another's
                if encoded and episode_features is None:
                    episode_features = np.empty((0, encoder.feature_dim), np.float16)
                if merge:  # straight into the features file: no part to write, fsync and read back
                    with _locked(path, create=False):
                        if encoded:
                            _write_rows(
                                path, cache, item.camera, [(item.episode, episode_features, "memory")]
                            )
                        else:
                            _merge_parts(path, cache, only=[(item.camera, item.episode)])
                elif encoded:
                    _write_part(path, item.camera, item.episode, episode_features)
                stats.episodes += bool(encoded)
                episode_features = None
                stats.write_s += time.perf_counter() - started
    finally:
        stop.set()
        producer.join(timeout=30)
        bar.close()
