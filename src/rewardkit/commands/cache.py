"""`rewardkit cache`: encode every frame of the chosen cameras once into a frozen-feature cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig, open_from_config
from rewardkit.distributed.engines import DistributedConfig
from rewardkit.errors import RewardkitError

HELP = "encode each frame of the chosen cameras once (frozen CLIP) into a float16 feature cache"
logger = logging.getLogger(__name__)


@dataclass
class CacheConfig:
    """Args:
    dataset: the LeRobot dataset (`--dataset.root=PATH` and/or `--dataset.repo_id=ID`, `--dataset.episodes=[0,1]`).
    encoder: encoder spec: `clip` (openai/clip-vit-base-patch32), `clip:<model id or folder>`,
        `clip-random:tiny` or `clip-random:vit-b-32` (random weights, no download), `efficientnet-lite0`
        or `efficientnet-lite0:grid2` (ImageNet weights shipped with rewardkit: pretrained, no download),
        `hf:<model id or folder>` (any Hugging Face vision backbone: SigLIP, SigLIP 2, DINOv2).
    cameras: camera keys to encode, e.g. `[observation.images.top]` (default: every camera of the dataset).
    batch_size: frames per encoder call.
    device: where the encoder runs (`cpu`, `cuda`, `cuda:1`, `mps`; default: cuda when available).
    dtype: encoder compute dtype (`float32`, `bfloat16`, `float16`); features are stored as float16.
    cache_dir: root folder of feature caches (default: `$REWARDKIT_CACHE` or `~/.cache/rewardkit/features`).
    texts: extra texts to encode besides the tasks, e.g. `["do nothing"]`.
    progress_bar: show a progress bar.
    distributed: spread the episodes over datatrove workers: `--distributed.executor=local|slurm
        --distributed.workers=N` (see `DistributedConfig`); each worker encodes its share, one merge task
        writes the cache. Without it, `accelerate launch -m rewardkit.cli cache ...` shares the episodes
        between the launched processes (one per GPU).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    encoder: str = "clip"
    cameras: list[str] | None = None
    batch_size: int = 64
    device: str | None = None
    dtype: str = "float32"
    cache_dir: str | None = None
    texts: list[str] = field(default_factory=list)
    progress_bar: bool = True
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def main(argv: list[str]) -> int:
    import torch

    from rewardkit.cache import BuildStats, build_cache
    from rewardkit.encoders import make_encoder

    cfg = parse_config(CacheConfig, argv, "cache", HELP, renamed={"--progress": "--progress_bar"})
    dataset = open_from_config(cfg.dataset)
    cameras = cfg.cameras if cfg.cameras else dataset.camera_keys
    if not cameras:
        raise RewardkitError(f"dataset {dataset.root} has no cameras to encode")
    for camera in cameras:
        dataset.check_camera(camera)  # fail before loading the encoder
    if cfg.distributed.executor:
        return _run_on_datatrove(cfg, dataset, cameras)
    from rewardkit.distributed import ShardState

    shard = ShardState.from_accelerate()
    device = cfg.device
    if device is None and shard.is_sharded:
        from accelerate import PartialState

        device = str(PartialState().device)  # one GPU per process
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder = make_encoder(cfg.encoder, device=device, dtype=cfg.dtype)
    stats = BuildStats()
    cache = build_cache(
        dataset, encoder, cameras, cache_dir=cfg.cache_dir, batch_size=cfg.batch_size,
        progress=cfg.progress_bar and shard.is_main_process, texts=cfg.texts, stats=stats, shard=shard,
    )  # fmt: skip
    if stats.frames:
        logger.info(
            "encoded %d frames in %.1f s (%.1f frames/s; encoder %.1f s, waiting for decoding %.1f s)",
            stats.frames, stats.total_s, stats.frames / max(stats.total_s, 1e-9), stats.encode_s,
            stats.decode_wait_s,
        )  # fmt: skip
    else:
        logger.info("nothing to encode: the cache already holds these episodes and cameras")
    if shard.is_main_process:
        announce("feature cache", cache.path)
    return 0


def _run_on_datatrove(cfg: CacheConfig, dataset, cameras: list[str]) -> int:
    """The build as datatrove stages: N tasks encode their shares, one merges."""
    from pathlib import Path

    from rewardkit.cache import default_cache_root
    from rewardkit.distributed.engines import (
        CacheMergeStep,
        CacheShardStep,
        clear_completions,
        find_cache_folder,
        run_stages,
    )

    cfg.distributed.check()
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()
    logging_dir = Path(cfg.distributed.logging_dir or root / ".datatrove" / Path(dataset.root).name)
    # Our parts, not datatrove's completion markers, say what is done: a rerun redoes only what is missing.
    clear_completions(logging_dir, ["cache", "cache_merge"])
    stages = [
        ("cache", CacheShardStep(cfg.dataset, cfg.encoder, list(cameras), cfg.cache_dir, cfg.device, cfg.dtype,
                                 cfg.batch_size, list(cfg.texts)), cfg.distributed.workers),
        ("cache_merge", CacheMergeStep(cfg.dataset, cfg.encoder, list(cameras), cfg.cache_dir, cfg.dtype), 1),
    ]  # fmt: skip
    run_stages(stages, cfg.distributed, logging_dir)
    if cfg.distributed.executor == "local":
        announce("feature cache", find_cache_folder(dataset, cfg.encoder, cfg.dtype, cfg.cache_dir))
    else:
        announce("datatrove logs", logging_dir)
    return 0
