"""Frozen image and text encoders behind one interface (`FrozenEncoder`), chosen by a spec string.

>>> encoder = make_encoder("clip-random:tiny")
>>> encoder.encode_images(frames)   # (N, H, W, 3) uint8 -> (N, D) float32
>>> encoder.encode_texts(["pick up the cube"])  # -> (1, D)
"""

from rewardkit.encoders.base import (
    FrozenEncoder,
    canonical_spec,
    make_encoder,
    register_encoder,
    registered_encoders,
    resolve_dtype,
)
from rewardkit.encoders.clip import CLIPEncoder, HashTokenizer, make_pretrained_clip, make_random_clip

__all__ = [
    "CLIPEncoder",
    "FrozenEncoder",
    "HashTokenizer",
    "canonical_spec",
    "make_encoder",
    "make_pretrained_clip",
    "make_random_clip",
    "register_encoder",
    "registered_encoders",
    "resolve_dtype",
]
