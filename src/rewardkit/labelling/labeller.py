"""Whole-dataset labelling: every frame of every episode through any rewardkit model.

The labeller asks the model what it reads (`required_inputs()`), gives it exactly that for one whole
episode at a time (`label_episode(EpisodeInputs)`), and leaves the batching over frames and windows to the
model, which knows its own window. Cache-reading models (`ModelInputs.encoder` set) get frozen-encoder
features from the feature cache, built first for every frame not yet cached (one encoder pass); raw-image
models get a callable that decodes a camera's frames on demand (each frame once, in order).

`--stride N`: the labeller asks for outputs at frames 0, N, 2N, ... and the last frame
(`EpisodeInputs.frame_indices`) and interpolates the rest linearly (stage probabilities are interpolated
per stage and renormalised). A model that can compute only those frames returns (N,) arrays and saves the
work; a model that cannot returns (T,) arrays and the labeller keeps the strided frames and interpolates
the same way, so the output does not depend on which the model did.

Sharding (`rewardkit.distributed`): with several workers (`accelerate launch` processes, datatrove
tasks), episodes are split between them, balanced by frame count (`shard_episodes`). `label_dataset`
gathers the results in memory. `label_to_parquet` works in episode parts: each episode's outputs are
written atomically as `<output dir>/.<output name>.parts/<episode>.npz` as soon as it is labelled, an
episode with a part is never labelled again (a killed worker is rerun and goes on where it stopped), and
one merge writes the parquet from the parts in episode order: byte-identical whatever the number of
workers or the order they finished in.

On a CUDA device the next episode's inputs are read (cached features copied out of the memory map into
page-locked memory) on a thread while the model labels the current one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from lerobot.utils.constants import OBS_STATE

from rewardkit.data.dataset import EpisodeInfo, RewardDataset
from rewardkit.distributed.shards import ShardState, shard_episodes
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write, atomic_write_text
from rewardkit.labelling.parquet import (
    PROGRESS_FILENAME,
    EpisodeLabels,
    dataset_fingerprint,
    write_progress_parquet,
)
from rewardkit.models.base import EpisodeInputs, FrameOutputs, ModelInputs, RewardModel

logger = logging.getLogger(__name__)

# Outputs with one value per frame: interpolated linearly under a stride.
# (`progress_std`, an ensemble's spread, is interpolated the same way: between labelled frames it is an
# estimate, as the progress is.)
PER_FRAME_OUTPUTS = ("progress", "progress_dense", "success_prob", "progress_std")
# Outputs with K probabilities per frame: interpolated per column, then renormalised.
STAGE_OUTPUTS = ("stage_probs", "stage_probs_dense")


class LabellingError(RewardkitError):
    """A model's output for an episode is malformed (wrong shape, out of range, not finite)."""


# ---- stride ------------------------------------------------------------------------------------
def strided_positions(length: int, stride: int) -> np.ndarray:
    """Frame positions labelled under `stride`: 0, stride, 2*stride, ... and always the last frame.

    Returns (N,) int64, sorted, unique.
    """
    if stride < 1:
        raise RewardkitError(f"stride must be >= 1, got {stride}")
    if length <= 0:
        raise RewardkitError(f"episode length must be positive, got {length}")
    positions = np.arange(0, length, stride, dtype=np.int64)
    if positions[-1] != length - 1:
        positions = np.append(positions, length - 1)
    return positions


def interpolate_outputs(
    positions: np.ndarray, outputs: dict[str, np.ndarray], length: int
) -> dict[str, np.ndarray]:
    """Fill every frame from outputs known at `positions` (N,): per-frame outputs (N,) -> (T,) linearly;
    stage probabilities (N, K) -> (T, K) per column, renormalised to sum to 1."""
    frames = np.arange(length, dtype=np.float64)
    filled: dict[str, np.ndarray] = {}
    for name, values in outputs.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            filled[name] = np.interp(frames, positions, values).astype(np.float32)
        else:
            columns = np.stack(
                [np.interp(frames, positions, values[:, k]) for k in range(values.shape[1])], 1
            )
            columns = np.clip(columns, 0.0, None)
            total = columns.sum(axis=1, keepdims=True)
            filled[name] = np.divide(columns, total, out=columns, where=total > 0).astype(np.float32)
    return filled


# ---- inputs ------------------------------------------------------------------------------------
class FeatureSource:
    """What the labeller needs from a feature cache (the cache's `FeatureCache` has these methods).

    `episode_features(episode_index, camera) -> (T, D)`, `text_features(task) -> (D,)`.
    """

    def episode_features(self, episode_index: int, camera: str) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError

    def text_features(self, task: str) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError


def open_feature_cache(
    dataset: RewardDataset,
    encoder_spec: str,
    cameras: Sequence[str],
    device: str = "cpu",
    dtype: Any = None,
    cache_dir: str | Path | None = None,
    encoder: Any = None,
    shard: ShardState | None = None,
) -> FeatureSource:
    """The feature cache of `dataset` for `encoder_spec`, built first for the frames not yet cached
    (`rewardkit.cache.open_or_build_cache`: a cache holding every chosen episode of `cameras` is opened
    without building the encoder; otherwise `encoder`, or one built on `device` in `dtype`, encodes the
    uncached frames, shared between the workers of `shard`)."""
    from rewardkit.cache import open_or_build_cache

    return open_or_build_cache(
        dataset,
        encoder_spec,
        cameras,
        cache_dir,
        device=device,
        dtype=dtype if dtype is not None else "float32",
        encoder=encoder,
        shard=shard,
    )


def resolve_cameras(needs: ModelInputs, dataset: RewardDataset) -> list[str]:
    """The cameras a model reads: the ones it names, or every camera of the dataset when it names none."""
    return list(needs.cameras) if needs.cameras else list(dataset.camera_keys)


def episode_inputs(
    dataset: RewardDataset,
    needs: ModelInputs,
    episode: EpisodeInfo,
    features: FeatureSource | None = None,
    frame_indices: np.ndarray | None = None,
) -> EpisodeInputs:
    """Assemble exactly what a model asked for (`needs`) for one whole episode.

    Cache-reading models (`needs.encoder` set) need `features`; raw-image models get
    `frames(camera) -> (T, H, W, 3) uint8`, decoded when called.
    """
    cameras = resolve_cameras(needs, dataset) if needs.encoder else list(needs.cameras)
    for camera in cameras:
        dataset.check_camera(camera)
    state = None
    if needs.state:
        state = dataset.read_columns(episode.episode_index, [OBS_STATE])[OBS_STATE].astype(np.float32)
    image_features = text_features = None
    frames: Callable[[str], np.ndarray] | None = None
    if needs.encoder:
        if features is None:
            raise RewardkitError(
                f"the model reads cached '{needs.encoder}' features but no feature cache was given"
            )
        image_features = {cam: features.episode_features(episode.episode_index, cam) for cam in cameras}
        text_features = features.text_features(episode.task)
        for cam, array in image_features.items():
            if len(array) != episode.length:
                raise RewardkitError(
                    f"feature cache has {len(array)} frames for episode {episode.episode_index} camera "
                    f"'{cam}', the dataset has {episode.length}: rebuild the cache"
                )
    else:
        index = episode.episode_index

        def frames(camera: str) -> np.ndarray:
            return dataset.read_frames(index, camera)

    return EpisodeInputs(
        episode_index=episode.episode_index,
        task=episode.task,
        length=episode.length,
        fps=dataset.fps,
        state=state,
        image_features=image_features,
        text_features=text_features,
        frames=frames,
        frame_indices=frame_indices,
    )


# ---- outputs -----------------------------------------------------------------------------------
def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def check_outputs(
    outputs: dict[str, Any], length: int, episode_index: int, model_name: str = "model"
) -> dict[str, np.ndarray]:
    """Validate one episode's model outputs and convert them to float32 numpy arrays.

    Per-frame outputs must be (length,), stage outputs (length, K); all finite, progress in [0, 1]
    (1e-4 slack, then clipped). Raises `LabellingError` naming the model, the episode and the output.
    """
    if "progress" not in outputs:
        raise LabellingError(
            f"{model_name} returned no 'progress' for episode {episode_index} (got {sorted(outputs)})"
        )
    checked = {}
    for name, value in outputs.items():
        array = _to_numpy(value)
        expected = (length,) if name not in STAGE_OUTPUTS else (length, array.shape[-1] if array.ndim else 0)
        if array.shape != expected:
            raise LabellingError(
                f"{model_name} returned '{name}' of shape {array.shape} for episode {episode_index}, "
                f"expected {expected}"
            )
        if not np.all(np.isfinite(array)):
            raise LabellingError(f"{model_name} returned non-finite '{name}' for episode {episode_index}")
        if name in PER_FRAME_OUTPUTS:
            if array.min() < -1e-4 or array.max() > 1 + 1e-4:
                raise LabellingError(
                    f"{model_name} returned '{name}' outside [0, 1] for episode {episode_index} "
                    f"(min {array.min():.4f}, max {array.max():.4f})"
                )
            array = np.clip(array, 0.0, 1.0)
        checked[name] = array
    return checked


def label_one_episode(model: RewardModel, inputs: EpisodeInputs, stride: int = 1) -> FrameOutputs:
    """Every frame's outputs for one episode: `model.label_episode` plus the stride and checks.

    Returns {"progress": (T,), ...} as float32 arrays.
    """
    length = inputs.length
    name = getattr(model, "name", type(model).__name__)
    if stride == 1:
        return check_outputs(model.label_episode(inputs), length, inputs.episode_index, name)
    positions = strided_positions(length, stride)
    inputs.frame_indices = positions
    raw = model.label_episode(inputs)
    sizes = {len(_to_numpy(v)) for v in raw.values()}
    if sizes == {len(positions)}:
        outputs = check_outputs(raw, len(positions), inputs.episode_index, name)
    else:  # the model computed every frame: keep the strided ones so the result does not depend on it
        outputs = {k: v[positions] for k, v in check_outputs(raw, length, inputs.episode_index, name).items()}
    return interpolate_outputs(positions, outputs, length)


# ---- whole dataset -----------------------------------------------------------------------------
def label_dataset(
    model: RewardModel,
    dataset: RewardDataset,
    stride: int = 1,
    features: FeatureSource | None = None,
    shard: ShardState | None = None,
    show_progress: bool = True,
    dtype: Any = None,
    cache_dir: str | Path | None = None,
    encoder: Any = None,
) -> list[EpisodeLabels]:
    """Label every frame of every selected episode of `dataset` with `model`.

    When the model reads cached features and `features` is None, the feature cache (under `cache_dir`,
    default `$REWARDKIT_CACHE`) is built for frames not yet cached and opened first. `dtype` (e.g.
    torch.bfloat16): the encoder runs in it, and the model on a copy of its weights in it (SARM) or under
    autocast to it (other models). With `shard`, only this
    process's episodes are labelled and the results gathered from every process. Returns all episodes'
    labels (on every process), sorted by index. `encoder`: an already built encoder for the cache build.
    """
    shard = shard or ShardState()
    episodes = shard_episodes(dataset.episodes(), shard.process_index, shard.num_processes)
    labels = list(
        _label_episodes(
            model, dataset, episodes, stride, features, shard, show_progress, dtype, cache_dir, encoder
        )  # fmt: skip
    )
    if shard.num_processes > 1:
        if shard.gather is None:
            raise RewardkitError("a ShardState with several processes needs a gather function")
        labels = list(shard.gather(labels))
    return sorted(labels, key=lambda e: e.episode_index)


def _label_episodes(
    model: RewardModel,
    dataset: RewardDataset,
    episodes: list[EpisodeInfo],
    stride: int,
    features: FeatureSource | None,
    shard: ShardState,
    show_progress: bool,
    dtype: Any,
    cache_dir: str | Path | None,
    encoder: Any,
) -> Iterator[EpisodeLabels]:
    """Label `episodes` one at a time, in order (the generator behind `label_dataset` and the parts)."""
    import contextlib

    import torch
    from tqdm import tqdm

    needs: ModelInputs = model.required_inputs()
    if hasattr(model, "prepare_for_dataset"):  # RewACT is a lerobot policy, not a RewardKitModel
        model.prepare_for_dataset(dataset)
    device = _model_device(model)
    if needs.state and episodes:
        # a NaN state would surface as "the model returned non-finite progress"; name the data instead
        dataset.check_finite([OBS_STATE], [e.episode_index for e in episodes])
    if needs.encoder and features is None and (episodes or shard.barrier is not None):
        cameras = resolve_cameras(needs, dataset)
        # Every worker of a group takes part in building what the cache lacks (each encodes its own
        # episodes), even one with no episode left to label: the build's barrier waits for all of them.
        features = open_feature_cache(dataset, needs.encoder, cameras, str(device), dtype, cache_dir, encoder,
                                      shard)  # fmt: skip
    low_precision = dtype is not None and dtype != torch.float32
    autocast = contextlib.nullcontext()
    if low_precision and hasattr(model, "compute_dtype"):
        # A model that computes in its weights' dtype (SARM) runs on a low-precision copy of its weights:
        # half the weight memory read per pass and no per-op casts (autocast re-casts weights every op).
        from rewardkit.precision import low_precision_copy

        model = low_precision_copy(model, dtype)
    elif low_precision:
        autocast = torch.autocast(device.type, dtype=dtype)
    pin = device.type == "cuda" and torch.cuda.is_available()

    def read(ep: EpisodeInfo) -> EpisodeInputs:
        inputs = episode_inputs(dataset, needs, ep, features)
        if pin and inputs.image_features is not None:
            inputs.image_features = {cam: _pinned_copy(a) for cam, a in inputs.image_features.items()}
        return inputs

    if not episodes:
        return
    # One episode read ahead: its features come off the disk (memory map) while the model labels the
    # current one, so a GPU is not left waiting on reads. Outputs do not depend on it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardkit-read") as reader:
        upcoming = reader.submit(read, episodes[0])
        for position, ep in enumerate(
            tqdm(episodes, desc="labelling", unit="episode", disable=not show_progress)
        ):
            inputs = upcoming.result()
            if position + 1 < len(episodes):
                upcoming = reader.submit(read, episodes[position + 1])
            with autocast:
                outputs = label_one_episode(model, inputs, stride)
            yield EpisodeLabels(ep.episode_index, ep.from_index, outputs)


def _pinned_copy(array: Any) -> np.ndarray:
    """A copy of `array` in page-locked memory, still a numpy array (the model's copy to the GPU is then
    a direct DMA, and can be asynchronous); the tensor owning the memory stays alive as its base."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array)).pin_memory()
    return tensor.numpy()


def _model_device(model: Any):
    import torch

    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def default_output_path(dataset: RewardDataset) -> Path:
    """Where the progress parquet goes by default: `<dataset root>/sarm_progress.parquet` (lerobot's name)."""
    return Path(dataset.root) / PROGRESS_FILENAME


def progress_parts_dir(output: str | Path) -> Path:
    """Where the per-episode parts of the progress parquet `output` wait to be merged (hidden, beside it)."""
    output = Path(output)
    return output.parent / f".{output.name}.parts"


def _model_fingerprint(model_path: str) -> str | None:
    """Sizes and times of a local checkpoint's files: parts from an older checkpoint at the same path
    must not be merged with new ones. None for a hub id or a named model."""
    folder = Path(model_path).expanduser()
    if not folder.exists():
        return None
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    entries = [[str(p.relative_to(folder)) if p != folder else p.name, p.stat().st_size, p.stat().st_mtime_ns]
               for p in files]  # fmt: skip
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:32]


def _start_parts(parts: Path, key: dict) -> None:
    """Create the parts folder with its key, or check that existing parts were made the same way."""
    key_path = parts / "key.json"
    if key_path.is_file():
        existing = json.loads(key_path.read_text())
        if existing != key:
            raise RewardkitError(
                f"{parts} holds episode parts of another labelling run (model, stride, dtype or dataset "
                f"differ: {existing.get('reward_model_path')} vs {key['reward_model_path']}); delete the "
                "folder to start over"
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_path, json.dumps(key, indent=1, sort_keys=True))


def _part_file(parts: Path, episode_index: int) -> Path:
    return parts / f"{episode_index}.npz"


def label_shard(
    model: RewardModel,
    model_path: str,
    dataset: RewardDataset,
    output: str | Path | None = None,
    stride: int = 1,
    features: FeatureSource | None = None,
    shard: ShardState | None = None,
    show_progress: bool = True,
    dtype: Any = None,
    cache_dir: str | Path | None = None,
    encoder: Any = None,
) -> list[int]:
    """Label this worker's episodes that have no part yet, each written as a part as soon as it is done.

    The parts live in `progress_parts_dir(output)`; `merge_progress_parts` turns them into the parquet.
    Returns the episodes labelled now (those with a part already are skipped).
    """
    shard = shard or ShardState()
    path = Path(output) if output is not None else default_output_path(dataset)
    parts = progress_parts_dir(path)
    key = {
        "reward_model_path": str(model_path),
        "model": _model_fingerprint(str(model_path)),
        "dtype": str(dtype) if dtype is not None else None,
        "metadata": {
            "stride": stride,
            "model_type": getattr(getattr(model, "config", None), "type", type(model).__name__),
            # RA-BC refuses the file on a dataset with another frame layout (`check_progress`).
            "dataset": dataset_fingerprint(dataset),
        },
    }
    _start_parts(parts, key)
    mine = shard_episodes(dataset.episodes(), shard.process_index, shard.num_processes)
    todo = [ep for ep in mine if not _part_file(parts, ep.episode_index).is_file()]
    if len(todo) < len(mine):
        logger.info("%d of this worker's %d episodes are already labelled (%s)", len(mine) - len(todo),
                    len(mine), parts)  # fmt: skip
    done = []
    for labels in _label_episodes(model, dataset, todo, stride, features, shard, show_progress, dtype, cache_dir,
                                  encoder):  # fmt: skip
        arrays = {name: np.asarray(value) for name, value in labels.outputs.items()}
        atomic_write(
            _part_file(parts, labels.episode_index),
            lambda temporary, arrays=arrays: np.savez(temporary, **arrays),
        )
        done.append(labels.episode_index)
    return done


def merge_progress_parts(output: str | Path, dataset: RewardDataset, keep_parts: bool = False) -> Path:
    """Write the progress parquet `output` from the parts of every chosen episode of `dataset`, in
    episode order (byte-identical whatever the number of workers), then remove the parts.

    Raises:
        RewardkitError: naming the episodes without a part (a worker did not finish: rerun it).
    """
    path = Path(output)
    parts = progress_parts_dir(path)
    key_path = parts / "key.json"
    if not key_path.is_file():
        raise RewardkitError(f"no labelled parts in {parts}: run the labelling workers first")
    key = json.loads(key_path.read_text())
    episodes = dataset.episodes()
    missing = [ep.episode_index for ep in episodes if not _part_file(parts, ep.episode_index).is_file()]
    if missing:
        raise RewardkitError(
            f"{parts} has no part for episode(s) {missing[:20]}{' ...' if len(missing) > 20 else ''}: a "
            "labelling worker did not finish; rerun the workers (labelled episodes are kept), then merge"
        )
    labels = []
    for ep in episodes:
        with np.load(_part_file(parts, ep.episode_index), allow_pickle=False) as data:
            outputs = {name: data[name] for name in data.files}
        if len(outputs.get("progress", ())) != ep.length:
            raise RewardkitError(
                f"part {_part_file(parts, ep.episode_index)} holds {len(outputs.get('progress', ()))} frames, "
                f"episode {ep.episode_index} has {ep.length}: delete {parts} and label again"
            )
        labels.append(EpisodeLabels(ep.episode_index, ep.from_index, outputs))
    metadata = {**key["metadata"], "episodes": [e.episode_index for e in labels]}
    written = write_progress_parquet(path, labels, key["reward_model_path"], metadata)
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return written


def label_to_parquet(
    model: RewardModel,
    model_path: str,
    dataset: RewardDataset,
    output: str | Path | None = None,
    stride: int = 1,
    features: FeatureSource | None = None,
    shard: ShardState | None = None,
    show_progress: bool = True,
    dtype: Any = None,
    cache_dir: str | Path | None = None,
    encoder: Any = None,
) -> Path | None:
    """Label `dataset` and write the progress parquet, through per-episode parts (`label_shard`, then
    `merge_progress_parts`): a run killed midway and started again labels only what is missing.

    With a sharded `shard`, each worker labels its share; with a barrier (accelerate) the main process
    merges once every worker is done; without one (datatrove tasks) nothing is merged here.
    Returns the path written on the process that merged, None on the others.
    """
    shard = shard or ShardState()
    path = Path(output) if output is not None else default_output_path(dataset)
    label_shard(model, model_path, dataset, path, stride, features, shard, show_progress, dtype, cache_dir,
                encoder)  # fmt: skip
    if shard.is_sharded:
        if shard.barrier is None:
            return None
        shard.barrier()
    written = merge_progress_parts(path, dataset) if shard.is_main_process else None
    if shard.is_sharded:
        shard.barrier()  # nobody leaves before the file is there
    return written
