"""The frozen-feature cache: every frame encoded once, float16 rows over the global frame index.

>>> cache = open_or_build_cache(dataset, "clip-random:tiny", ["observation.images.top"])  # opened, or built
>>> cache = build_cache(dataset, make_encoder("clip-random:tiny"), ["observation.images.top"])
>>> cache.episode_features(0, "observation.images.top")   # (T, D) float16, memory-mapped
>>> cache.text_features(dataset.episode(0).task)            # (D,) float32
"""

from rewardkit.cache.build import BuildStats, build_cache, cache_path_for, merge_cache
from rewardkit.cache.open import open_or_build_cache
from rewardkit.cache.store import FeatureCache, default_cache_root

__all__ = [
    "BuildStats",
    "FeatureCache",
    "build_cache",
    "cache_path_for",
    "default_cache_root",
    "merge_cache",
    "open_or_build_cache",
]
