"""CLIP encoders (transformers' `CLIPModel`): the pretrained one and seeded random ones.

Features are CLIP's projected embeddings (`get_image_features` / `get_text_features`), not L2-normalised:
the same numbers lerobot's SARM feeds its model, so checkpoints trained either way see the same inputs.

Images are prepared in batch by transformers' `CLIPImageProcessor` (its torchvision backend, on uint8
tensors, no PIL): resize the shortest side to `image_size` (bicubic), centre-crop, rescale, normalise with
CLIP's mean and std. It is the processor lerobot's SARM uses, so a lerobot SARM checkpoint sees the same
pixels through rewardkit as through lerobot (an earlier hand-written float resize differed by up to 0.35 in
normalised units on 96 -> 224 upscaling, and was slower).

Random models (`clip-random:tiny`, `clip-random:vit-b-32`) cannot use CLIP's tokenizer (its vocabulary
files would need a download), so they use `HashTokenizer`: lower-cased words and punctuation, each mapped
to a token id by a stable hash (BLAKE2b) into the vocabulary, wrapped in CLIP's begin/end tokens. It is
deterministic across processes and machines, which is all a random model needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardkit.encoders.base import FrozenEncoder, channels_first, register_encoder
from rewardkit.encoders.text import split_words, stable_hash
from rewardkit.errors import RewardkitError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
RANDOM_SEED = 0
_IMAGE_CHUNK = 256  # frames per forward pass inside encode_images (bounds the 224x224 float buffers)


def _random_configs() -> dict[str, dict]:
    """Shapes of the seeded random CLIP models, by name."""
    return {
        # Small enough for tests: 32x32 input, 16 patches, 2 layers, 64-d features.
        "tiny": {
            "text_config": {
                "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2, "max_position_embeddings": 32,
                "pad_token_id": 0, "bos_token_id": 998, "eos_token_id": 999,
            },
            "vision_config": {
                "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
            },
            "projection_dim": 64,
        },
        # CLIP ViT-B/32's shapes (transformers' defaults): the real model's compute.
        "vit-b-32": {"text_config": {}, "vision_config": {}, "projection_dim": 512},
    }  # fmt: skip


class HashTokenizer:
    """Deterministic tokenizer for randomly initialised CLIP text models (no vocabulary files).

    Words (`[a-z0-9]+`) and single punctuation marks of the lower-cased text are mapped to ids in
    `[first_id, vocab_size)` minus the special ids, by BLAKE2b; the sequence is `[bos] tokens [eos]`,
    truncated to `max_length` and right-padded with `pad_id`.
    """

    def __init__(self, vocab_size: int, max_length: int, bos_id: int, eos_id: int, pad_id: int) -> None:
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self._special = sorted({bos_id, eos_id, pad_id})
        self._ordinary = vocab_size - len([s for s in self._special if 0 <= s < vocab_size])

    def token_id(self, word: str) -> int:
        """The id of one word: a stable hash, skipping the special ids."""
        token = stable_hash(word) % self._ordinary
        for special in self._special:  # shift past the special ids so they are never produced
            if token >= special:
                token += 1
        return token

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize: N texts -> `input_ids` and `attention_mask`, both (N, L) int64."""
        sequences = []
        for text in texts:
            words = split_words(text)
            ids = [self.token_id(w) for w in words][: self.max_length - 2]
            sequences.append([self.bos_id, *ids, self.eos_id])
        length = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class CLIPEncoder(FrozenEncoder):
    """A transformers `CLIPModel` as a frozen encoder.

    Args:
        model: the CLIP model (moved to `device`/`dtype`, put in eval mode, gradients off).
        tokenizer: callable `texts -> {"input_ids", "attention_mask"}` (CLIP's tokenizer or `HashTokenizer`).
        spec: the encoder's identity (see `FrozenEncoder.spec`).
        image_processor: a transformers `CLIPImageProcessor` (resize shortest edge, centre crop, rescale,
            normalise). Default: CLIP's published settings at the model's input size. It is the class
            lerobot's SARM processor uses, so features match lerobot's for the same frames.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        spec: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        image_processor=None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.spec = spec
        self.image_size = int(model.config.vision_config.image_size)
        self.feature_dim = int(model.config.projection_dim)
        self.max_text_length = int(model.config.text_config.max_position_embeddings)
        self.image_processor = image_processor or default_image_processor(self.image_size)
        self.calls = 0  # number of encode_images batches (lets callers and tests see what was encoded)

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, S, S) normalised pixels in the encoder's dtype, S = image_size."""
        # transformers' processor works on (N, 3, H, W) uint8 tensors in batch (torchvision backend).
        pixels = self.image_processor(images=channels_first(frames), return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype, non_blocking=True)

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB -> (N, D) float32 CLIP image features (CPU)."""
        self.calls += 1
        out = []
        for start in range(0, len(frames), _IMAGE_CHUNK):
            pixels = self.preprocess(frames[start : start + _IMAGE_CHUNK])
            out.append(_pooled(self.model.get_image_features(pixel_values=pixels)).float().cpu())
        if not out:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        return torch.cat(out)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, D) float32 CLIP text features (CPU)."""
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        tokens = self.tokenizer(texts)
        tokens = {k: torch.as_tensor(tokens[k]).to(self.device) for k in ("input_ids", "attention_mask")}
        return _pooled(self.model.get_text_features(**tokens)).float().cpu()


def default_image_processor(image_size: int):
    """CLIP's image processor with its published settings (bicubic resize of the shortest edge, centre
    crop, CLIP mean/std) at `image_size`; built locally, no download."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def _pooled(output) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected features.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def make_random_clip(name: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> CLIPEncoder:
    """A randomly initialised CLIP (`"tiny"` or `"vit-b-32"`), seeded so every process gets the same weights."""
    from transformers import CLIPConfig, CLIPModel

    configs = _random_configs()
    if name not in configs:
        raise RewardkitError(
            f"unknown random CLIP {name!r}; choose one of {sorted(configs)} ('clip-random:<name>')"
        )
    config = CLIPConfig(**configs[name])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = CLIPModel(config)
    text = config.text_config
    tokenizer = HashTokenizer(
        vocab_size=text.vocab_size,
        max_length=text.max_position_embeddings,
        bos_id=text.bos_token_id,
        eos_id=text.eos_token_id,
        pad_id=text.pad_token_id,
    )
    return CLIPEncoder(model, tokenizer, spec=f"clip-random:{name}", device=device, dtype=dtype)


def make_pretrained_clip(
    model_id: str = DEFAULT_CLIP_MODEL, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> CLIPEncoder:
    """A pretrained CLIP from the hub or a local folder (safetensors weights), with its own tokenizer."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    try:
        model = CLIPModel.from_pretrained(model_id, use_safetensors=True)
        # A checkpoint's config names the encoder: never run a repo's own tokenizer code (transformers
        # would otherwise ask on the terminal).
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
    except OSError as e:
        raise RewardkitError(
            f"cannot load CLIP model {model_id!r} ({e}); give a hub id reachable from here or a local folder "
            "holding config.json, model.safetensors and the tokenizer files"
        ) from e
    try:
        processor = CLIPImageProcessor.from_pretrained(model_id)
    except OSError:
        processor = None  # no preprocessor_config.json: CLIP's published settings at the model's size

    def tokenize(texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True)

    spec_id = str(Path(model_id).expanduser().resolve()) if Path(model_id).expanduser().is_dir() else model_id
    return CLIPEncoder(
        model, tokenize, spec=f"clip:{spec_id}", device=device, dtype=dtype, image_processor=processor
    )


register_encoder("clip", make_pretrained_clip, default_argument=DEFAULT_CLIP_MODEL)
register_encoder("clip-random", make_random_clip)
