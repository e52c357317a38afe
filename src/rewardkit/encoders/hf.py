"""Any Hugging Face vision backbone as a frozen encoder: `hf:<model id or local folder>`.

The model is loaded with transformers' `AutoModel` (safetensors weights only, never a repo's own code),
its image processor with `AutoImageProcessor` (the folder's `preprocessor_config.json`), both offline when
the folder is local or the hub cache holds the model.

Image features:
- models with an image tower beside a text tower (SigLIP, SigLIP 2, CLIP, ...): `get_image_features`, the
  pooled (and, where the model has one, projected) embedding that its text features are compared with;
- vision-only models (DINOv2, ViT, ...): `pooler_output` (for DINOv2 the layer-normed CLS token), else the
  first token of `last_hidden_state` (CLS); a pooled map (N, C, 1, 1) is flattened.

Text features: the model's own text tower (`get_text_features`, with its own tokenizer; SigLIP texts are
padded to the maximum length, as SigLIP was trained) when it has one, else `HashedTextEncoder`
(rewardkit.encoders.text: offline, deterministic) at the size of the image features.

D is measured once at construction by encoding one blank frame, so any backbone's output size is known
without a table of architectures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardkit.encoders.base import FrozenEncoder, channels_first, register_encoder
from rewardkit.encoders.text import HashedTextEncoder
from rewardkit.errors import RewardkitError

_IMAGE_CHUNK = 128  # frames per forward pass inside encode_images
_MAX_LENGTH_PADDED = ("siglip", "siglip2")  # model types whose text tower was trained on max-length padding
_TEXT_INPUTS = ("input_ids", "attention_mask", "position_ids")


class HFVisionEncoder(FrozenEncoder):
    """A transformers vision (or vision + text) model as a frozen encoder (see the module doc).

    Args:
        model: the transformers model (moved to `device`/`dtype`, eval mode, gradients off).
        image_processor: its transformers image processor (called on (N, 3, H, W) uint8 tensors).
        tokenizer: its tokenizer when the model has a text tower (`get_text_features`), else None:
            texts then go through `HashedTextEncoder`.
        spec: the encoder's identity (`"hf:<model id or absolute folder>"`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        image_processor,
        tokenizer,
        spec: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval().requires_grad_(False)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.spec = spec
        self.image_size = _image_size(image_processor, model.config)
        self.calls = 0
        blank = np.zeros((1, max(self.image_size, 32), max(self.image_size, 32), 3), dtype=np.uint8)
        self.feature_dim = int(self._encode_chunk(blank).shape[-1])
        self.text_encoder = None if tokenizer is not None else HashedTextEncoder(self.feature_dim)
        if tokenizer is not None:
            text_dim = int(self.encode_texts(["a"]).shape[-1])
            if text_dim != self.feature_dim:
                raise RewardkitError(
                    f"encoder {spec}: text features have size {text_dim} but image features {self.feature_dim}; "
                    "rewardkit needs both of one size"
                )

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, H, W, 3) uint8 -> the model's image inputs (`pixel_values` (N, 3, S, S) in the encoder's
        dtype, plus what the processor adds, e.g. SigLIP 2's `pixel_attention_mask` and `spatial_shapes`)."""
        inputs = self.image_processor(images=channels_first(frames), return_tensors="pt")
        return {
            name: value.to(self.device, self.dtype) if value.is_floating_point() else value.to(self.device)
            for name, value in inputs.items()
            if isinstance(value, torch.Tensor)
        }

    def _encode_chunk(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        inputs = self.preprocess(frames)
        if hasattr(self.model, "get_image_features"):
            features = _pooled(self.model.get_image_features(**inputs))
        else:
            output = self.model(**inputs)
            pooled = getattr(output, "pooler_output", None)
            features = pooled if pooled is not None else output.last_hidden_state[:, 0]
        return features.reshape(len(features), -1).float().cpu()

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB -> (N, D) float32 pooled image features (CPU)."""
        self.calls += 1
        out = [self._encode_chunk(frames[i : i + _IMAGE_CHUNK]) for i in range(0, len(frames), _IMAGE_CHUNK)]
        if not out:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        return torch.cat(out)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, D) float32: the model's text tower, or hashed features when it has none."""
        texts = list(texts)
        if self.text_encoder is not None:
            return self.text_encoder(texts)
        if not texts:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        config = self.model.config
        max_length = min(
            int(self.tokenizer.model_max_length),
            int(getattr(getattr(config, "text_config", config), "max_position_embeddings", 10**9)),
        )
        padding = "max_length" if getattr(config, "model_type", "") in _MAX_LENGTH_PADDED else True
        tokens = self.tokenizer(
            texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt"
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in _TEXT_INPUTS}
        return _pooled(self.model.get_text_features(**tokens)).float().cpu()


def _pooled(output) -> torch.Tensor:
    # transformers 5 returns model outputs whose pooler_output holds the (projected) features.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _image_size(processor, config) -> int:
    """The square input size the processor produces (crop, else resize), else the config's; 0 if none."""
    for name in ("crop_size", "size"):
        size = getattr(processor, name, None)
        if isinstance(size, dict):
            for key in ("height", "shortest_edge"):
                if size.get(key):
                    return int(size[key])
    vision = getattr(config, "vision_config", config)
    return int(getattr(vision, "image_size", 0) or 0)


def make_hf_encoder(
    model_id: str, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> HFVisionEncoder:
    """The encoder of a Hugging Face model id or local folder (config.json, model.safetensors,
    preprocessor_config.json; tokenizer files too when the model has a text tower)."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    local = Path(model_id).expanduser()
    spec_id = str(local.resolve()) if local.is_dir() else model_id
    try:
        # Never a repo's own code: the encoder is named by a flag, but the files come from wherever it points.
        model = AutoModel.from_pretrained(model_id, use_safetensors=True, trust_remote_code=False)
        processor = AutoImageProcessor.from_pretrained(model_id, trust_remote_code=False)
        tokenizer = None
        if hasattr(model, "get_text_features"):
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise RewardkitError(
            f"cannot load Hugging Face model {model_id!r} as an encoder ({e}); give a hub id reachable from here "
            "or a local folder holding config.json, model.safetensors, preprocessor_config.json and, for a "
            "model with a text tower, its tokenizer files"
        ) from e
    return HFVisionEncoder(model, processor, tokenizer, spec=f"hf:{spec_id}", device=device, dtype=dtype)


register_encoder("hf", make_hf_encoder)
