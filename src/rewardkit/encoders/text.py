"""A small text encoder for image encoders that have no text tower (EfficientNet, DINOv2).

Reward models need a feature for the task text beside the image features, of the same size D. An ImageNet
CNN has no text tower, and a real text model would need a download, so `HashedTextEncoder` embeds texts as
a seeded random projection of a bag of hashed features:

- features: the lower-cased words (`[a-z0-9]+`; punctuation is ignored, so "Lift the cube." is "lift the
  cube") and the character trigrams of each word padded with `<` and `>` (so "cube" and "cubes" share
  most features);
- each feature gets a fixed random direction in R^D: standard normal entries drawn from numpy's PCG64
  seeded with (seed, BLAKE2b hash of the feature) — stable across processes, machines and Python's hash
  randomisation;
- a text is the weighted sum of its features' directions (a word weighs 1, its trigrams 1 together),
  divided by the norm of the weights, so entries are of order 1 whatever the text length.

It knows no meaning (synonyms are unrelated), but it tells tasks apart, texts that share words are close,
and it is deterministic: what a reward model needs to condition on which task it is watching.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

_WORD_PATTERN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_ALPHANUMERIC = re.compile(r"[a-z0-9]+")
TEXT_SEED = 0


def split_words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: `"Push the block!"` -> `["push", "the", "block", "!"]`."""
    return _WORD_PATTERN.findall(text.lower())


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (BLAKE2b; Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class HashedTextEncoder:
    """Deterministic bag-of-words + character-trigram text features of size `feature_dim` (see module doc).

    Args:
        feature_dim: D, the size of the features (that of the image features beside it).
        seed: changes every feature's direction; part of the encoder's identity.
    """

    def __init__(self, feature_dim: int, seed: int = TEXT_SEED) -> None:
        self.feature_dim = int(feature_dim)
        self.seed = int(seed)
        self._direction = lru_cache(maxsize=65536)(self._draw_direction)

    def _draw_direction(self, feature: str) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64([self.seed, stable_hash(feature)]))
        return rng.standard_normal(self.feature_dim)

    @staticmethod
    def features(text: str) -> Counter:
        """The weighted features of one text: words (weight 1) and each word's trigrams (weight 1 in all)."""
        weights: Counter = Counter()
        for word in _ALPHANUMERIC.findall(text.lower()):
            weights["w:" + word] += 1.0
            padded = f"<{word}>"
            trigrams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            for trigram in trigrams:
                weights["c:" + trigram] += 1.0 / len(trigrams)
        return weights

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, D) float32. An empty text gives zeros."""
        out = np.zeros((len(texts), self.feature_dim), dtype=np.float64)
        for row, text in enumerate(texts):
            weights = self.features(text)
            if not weights:
                continue
            for feature in sorted(weights):  # a fixed order: float sums are the same in every process
                out[row] += weights[feature] * self._direction(feature)
            out[row] /= np.sqrt(sum(w * w for w in weights.values()))
        return torch.from_numpy(out.astype(np.float32))
