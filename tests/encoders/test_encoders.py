"""Encoders: seeded random CLIP, batch preprocessing, tokenizer, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.encoders import (
    FrozenEncoder,
    HashTokenizer,
    canonical_spec,
    make_encoder,
    register_encoder,
    registered_encoders,
)


@pytest.fixture(scope="module")
def encoder():
    return make_encoder("clip-random:tiny")


def _frames(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_tiny_clip_shapes_and_identity(encoder):
    assert encoder.spec == "clip-random:tiny"
    assert encoder.feature_dim == 64 and encoder.image_size == 32
    features = encoder.encode_images(_frames(5))
    assert features.shape == (5, 64) and features.dtype == torch.float32
    texts = encoder.encode_texts(["push the block to the right", "lift the cube"])
    assert texts.shape == (2, 64) and texts.dtype == torch.float32
    assert not torch.allclose(texts[0], texts[1])
    assert not any(p.requires_grad for p in encoder.model.parameters())
    assert not encoder.model.training


def test_same_spec_same_weights_whatever_the_global_seed(encoder):
    # Seeded from its own RNG: the same spec gives the same features in any process, and building an
    # encoder leaves the caller's random stream alone.
    frames = _frames(3, seed=7)
    torch.manual_seed(1234)
    torch.rand(100)
    state = torch.random.get_rng_state()
    again = make_encoder("clip-random:tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(again.encode_images(frames), encoder.encode_images(frames), rtol=0, atol=0)
    torch.testing.assert_close(again.encode_texts(["lift"]), encoder.encode_texts(["lift"]), rtol=0, atol=0)


def test_batch_result_matches_one_by_one(encoder):
    frames = _frames(4, seed=1)
    batch = encoder.encode_images(frames)
    single = torch.cat([encoder.encode_images(frames[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)
    # torch uint8 input gives the same as numpy input
    torch.testing.assert_close(encoder.encode_images(torch.from_numpy(frames)), batch)


def test_preprocess_matches_clip_normalisation(encoder):
    frames = _frames(2, size=32, seed=3)  # already at the encoder's size: no resampling
    pixels = encoder.preprocess(frames)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    expected = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - mean) / std
    torch.testing.assert_close(pixels, expected, rtol=1e-5, atol=1e-5)


def test_preprocess_equals_the_processor_lerobots_sarm_uses(encoder):
    """lerobot's SARM turns frames into PIL images and calls transformers' CLIP image processor on them; we
    feed the same pixels (batched uint8 tensors), so lerobot checkpoints see identical inputs."""
    from PIL import Image
    from transformers import CLIPImageProcessor

    frames = _frames(3, size=20, seed=5)  # upscaled to 32: resampling matters
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    theirs = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(encoder.preprocess(frames), theirs, rtol=0, atol=1e-6)


def test_preprocess_resizes_and_centre_crops(encoder):
    # A constant frame stays constant through resize + crop; a wide frame is cropped to a square.
    frames = np.full((1, 48, 96, 3), 200, dtype=np.uint8)
    pixels = encoder.preprocess(frames)
    assert pixels.shape == (1, 3, 32, 32)
    torch.testing.assert_close(
        pixels, encoder.preprocess(np.full((1, 32, 32, 3), 200, np.uint8)), atol=1e-4, rtol=0
    )
    # Left half black, right half white, wider than tall: the centre crop keeps both halves equally.
    frames = np.zeros((1, 32, 64, 3), dtype=np.uint8)
    frames[:, :, 32:] = 255
    pixels = encoder.preprocess(frames)[0, 0]
    assert pixels[:, :14].mean() < 0 < pixels[:, 18:].mean()


def test_bad_frames_are_rejected(encoder):
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode_images(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        encoder.encode_images(np.zeros((32, 32, 3), dtype=np.uint8))


def test_hash_tokenizer_is_stable_and_avoids_special_ids():
    tokenizer = HashTokenizer(vocab_size=50, max_length=8, bos_id=48, eos_id=49, pad_id=0)
    out = tokenizer(["Push the block!", "push the block !", "a b c d e f g h i j"])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert torch.equal(ids[0], ids[1])  # case and spacing do not matter
    assert ids.shape == (3, 8)
    assert ids[2, 0] == 48 and ids[2, -1] == 49  # truncated, still ends with eos
    assert ids[0, 5] == 49 and ids[0, 6:].eq(0).all() and mask[0].tolist() == [1] * 6 + [0] * 2
    words = [tokenizer.token_id(f"w{i}") for i in range(2000)]
    assert not {0, 48, 49} & set(words) and max(words) < 50


def test_spec_resolution_and_registry(tmp_path):
    assert canonical_spec("clip") == "clip:openai/clip-vit-base-patch32"
    assert canonical_spec(f"clip:{tmp_path}") == f"clip:{tmp_path.resolve()}"
    assert {"clip", "clip-random"} <= set(registered_encoders())
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("nope:x")
    with pytest.raises(ValueError, match="unknown random CLIP"):
        make_encoder("clip-random:huge")

    class Constant(FrozenEncoder):
        def __init__(self, value: str, device: str, dtype: torch.dtype) -> None:
            self.spec, self.feature_dim, self.image_size = f"constant:{value}", 3, 8
            self.device, self.dtype, self.value = torch.device(device), dtype, float(value)

        def encode_images(self, frames):
            return torch.full((len(frames), 3), self.value)

        def encode_texts(self, texts):
            return torch.full((len(texts), 3), -self.value)

    register_encoder("constant", Constant)
    encoder = make_encoder("constant:2.5")
    assert encoder.spec == "constant:2.5"
    assert encoder.encode_images(np.zeros((2, 4, 4, 3), np.uint8)).tolist() == [[2.5] * 3] * 2


def test_pretrained_clip_without_files_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="cannot load CLIP model"):
        make_encoder(f"clip:{tmp_path}")


def test_bfloat16_encoder_close_to_float32(encoder):
    low = make_encoder("clip-random:tiny", dtype="bfloat16")
    frames = _frames(3, seed=5)
    a, b = encoder.encode_images(frames), low.encode_images(frames)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98
