"""`rewardkit cache`: encode every frame of the chosen cameras once into a frozen-feature cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig, open_from_config
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
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder = make_encoder(cfg.encoder, device=device, dtype=cfg.dtype)
    stats = BuildStats()
    cache = build_cache(
        dataset, encoder, cameras, cache_dir=cfg.cache_dir, batch_size=cfg.batch_size,
        progress=cfg.progress_bar, texts=cfg.texts, stats=stats,
    )  # fmt: skip
    if stats.frames:
        logger.info(
            "encoded %d frames in %.1f s (%.1f frames/s; encoder %.1f s, waiting for decoding %.1f s)",
            stats.frames, stats.total_s, stats.frames / max(stats.total_s, 1e-9), stats.encode_s,
            stats.decode_wait_s,
        )  # fmt: skip
    else:
        logger.info("nothing to encode: the cache already holds these episodes and cameras")
    announce("feature cache", cache.path)
    return 0
