"""Frozen image and text encoders behind one interface (`FrozenEncoder`), chosen by a spec string.

>>> encoder = make_encoder("clip-random:tiny")  # or "efficientnet-lite0" (pretrained, offline), "hf:<id>"
>>> encoder.encode_images(frames)   # (N, H, W, 3) uint8 -> (N, D) float32
>>> encoder.encode_texts(["pick up the cube"])  # -> (1, D)
"""

from rewardkit.encoders.base import (
    FrozenEncoder,
    canonical_spec,
    channels_first,
    make_encoder,
    register_encoder,
    registered_encoders,
    resolve_dtype,
)
from rewardkit.encoders.clip import CLIPEncoder, HashTokenizer, make_pretrained_clip, make_random_clip
from rewardkit.encoders.efficientnet import EfficientNetEncoder, make_efficientnet_lite0
from rewardkit.encoders.hf import HFVisionEncoder, make_hf_encoder
from rewardkit.encoders.text import HashedTextEncoder

__all__ = [
    "CLIPEncoder",
    "EfficientNetEncoder",
    "FrozenEncoder",
    "HFVisionEncoder",
    "HashTokenizer",
    "HashedTextEncoder",
    "canonical_spec",
    "channels_first",
    "make_efficientnet_lite0",
    "make_encoder",
    "make_hf_encoder",
    "make_pretrained_clip",
    "make_random_clip",
    "register_encoder",
    "registered_encoders",
    "resolve_dtype",
]
