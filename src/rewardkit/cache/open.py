"""One way to get features: open the feature cache, or build what it lacks.

Every reader of cached features (the labeller, SARM and classifier training) calls `open_or_build_cache`,
so the rule is written once: a cache holding every needed frame and text is opened without building the
encoder; otherwise the encoder is built once and encodes only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardkit.cache.build import build_cache
from rewardkit.cache.store import FeatureCache

logger = logging.getLogger(__name__)


def open_or_build_cache(
    dataset: Any,
    encoder_spec: str,
    cameras: Sequence[str],
    cache_dir: str | Path | None = None,
    *,
    episodes: Sequence[int] | None = None,
    texts: Sequence[str] = (),
    device: str = "cpu",
    dtype: Any = "float32",
    encoder: Any = None,
    progress: bool = True,
    shard: Any = None,
) -> FeatureCache:
    """The feature cache of `dataset` for `encoder_spec`, built first for whatever it lacks.

    Args:
        dataset: the `RewardDataset`.
        encoder_spec: the frozen encoder's spec (`"clip"`, `"clip-random:tiny"`, ...).
        cameras: the camera keys whose frames are needed.
        cache_dir: root of the feature caches (default `$REWARDKIT_CACHE` or ~/.cache/rewardkit/features).
        episodes: the episodes needed (default: the dataset's chosen episodes).
        texts: extra texts needed besides the tasks (e.g. language-perturbation texts).
        device, dtype: where and in which dtype the encoder runs when it must be built; `dtype` is part of
            the cache's key (a torch dtype or its name).
        encoder: an already built `FrozenEncoder` of `encoder_spec` (its dtype wins over `dtype`).
        progress: show a progress bar while encoding.
        shard: this worker's `ShardState` when several workers build the cache together (`build_cache`).

    Returns:
        The `FeatureCache`; the encoder is built only when some frame or text is missing.
    """
    from rewardkit.encoders import make_encoder, resolve_dtype

    cameras = list(dict.fromkeys(cameras))
    wanted = list(dataset.episode_indices if episodes is None else episodes)
    encoder_dtype = encoder.dtype if encoder is not None else resolve_dtype(dtype)
    cache = FeatureCache.for_dataset(
        dataset, encoder_spec, cameras, cache_dir=cache_dir, encoder_dtype=encoder_dtype, episodes=wanted
    )
    missing_texts = [t for t in dict.fromkeys(texts) if cache is None or t not in cache.tasks]
    if cache is not None and not missing_texts:
        logger.info("feature cache %s holds every frame needed (%s, %s)", cache.path, encoder_spec, cameras)
        return cache
    if cache is None:
        logger.info("building the feature cache (%s) for %s: %d episodes", encoder_spec, cameras, len(wanted))
    else:
        # every frame is cached: only the encoder's text side runs
        logger.info("feature cache %s: encoding %d new texts", cache.path, len(missing_texts))
    if encoder is None:
        encoder = make_encoder(encoder_spec, device=device, dtype=encoder_dtype)
    return build_cache(
        dataset, encoder, cameras, cache_dir=cache_dir, episodes=wanted, texts=list(texts), progress=progress,
        shard=shard,
    )  # fmt: skip
