"""`hf:<model>` encoders on tiny random SigLIP, SigLIP 2 and DINOv2 folders written here (never downloaded):
features equal the model's own outputs, are deterministic across rebuilds, load offline, and bad folders
fail with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.encoders import HashedTextEncoder, canonical_spec, make_encoder

_TEXT = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 2, "max_position_embeddings": 16}  # fmt: skip
_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def _save_tokenizer(folder) -> None:
    """A word-level fast tokenizer built in memory (SigLIP's sentencepiece files would need a download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", *"pick up the cube open drawer push block to right lift a red".split()]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=16, model_input_names=["input_ids"],
    ).save_pretrained(folder)  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny random SigLIP, SigLIP 2 and DINOv2 models saved with their processors: name -> folder."""
    from transformers import (
        BitImageProcessor,
        Dinov2Config,
        Dinov2Model,
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )  # fmt: skip

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    siglip = root / "siglip"
    vision = {**_VISION, "image_size": 32, "patch_size": 8}
    SiglipModel(SiglipConfig(text_config=_TEXT, vision_config=vision)).save_pretrained(siglip)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(siglip)
    _save_tokenizer(siglip)

    siglip2 = root / "siglip2"
    vision2 = {**_VISION, "num_patches": 16, "patch_size": 8}
    Siglip2Model(Siglip2Config(text_config=_TEXT, vision_config=vision2)).save_pretrained(siglip2)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=16).save_pretrained(siglip2)
    _save_tokenizer(siglip2)

    dino = root / "dinov2"
    Dinov2Model(Dinov2Config(**_VISION, image_size=32, patch_size=8)).save_pretrained(dino)
    BitImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(dino)  # fmt: skip
    return {"siglip": siglip, "siglip2": siglip2, "dinov2": dino}


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 56, 3), dtype=np.uint8)


def test_siglip_uses_its_image_and_text_towers(folders):
    from transformers import AutoTokenizer, SiglipImageProcessor, SiglipModel

    encoder = make_encoder(f"hf:{folders['siglip']}")
    assert encoder.spec == canonical_spec(f"hf:{folders['siglip']}") == f"hf:{folders['siglip'].resolve()}"
    assert (encoder.feature_dim, encoder.image_size) == (32, 32)
    frames = _frames(3)
    features = encoder.encode_images(frames)
    assert features.shape == (3, 32) and features.dtype == torch.float32
    assert not encoder.model.training and not any(p.requires_grad for p in encoder.model.parameters())

    model = SiglipModel.from_pretrained(folders["siglip"]).eval()
    processor = SiglipImageProcessor.from_pretrained(folders["siglip"])
    with torch.inference_mode():
        pixels = processor(images=torch.from_numpy(frames).permute(0, 3, 1, 2), return_tensors="pt")
        expected = model.get_image_features(pixel_values=pixels["pixel_values"]).pooler_output
        tokens = AutoTokenizer.from_pretrained(folders["siglip"])(
            ["pick up the cube", "open the drawer"], padding="max_length", max_length=16, return_tensors="pt"
        )
        expected_texts = model.get_text_features(input_ids=tokens["input_ids"]).pooler_output
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    texts = encoder.encode_texts(["pick up the cube", "open the drawer"])
    torch.testing.assert_close(texts, expected_texts, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(texts[0], texts[1])
    # SigLIP was trained on max-length padding: a text's features do not depend on the batch around it.
    torch.testing.assert_close(encoder.encode_texts(["open the drawer"])[0], texts[1], rtol=1e-5, atol=1e-6)


def test_dinov2_pools_cls_and_hashes_texts(folders):
    from transformers import BitImageProcessor, Dinov2Model

    encoder = make_encoder(f"hf:{folders['dinov2']}")
    assert encoder.tokenizer is None and (encoder.feature_dim, encoder.image_size) == (32, 32)
    frames = _frames(2, seed=1)
    model = Dinov2Model.from_pretrained(folders["dinov2"]).eval()
    processor = BitImageProcessor.from_pretrained(folders["dinov2"])
    with torch.inference_mode():
        pixels = processor(images=torch.from_numpy(frames).permute(0, 3, 1, 2), return_tensors="pt")
        expected = model(pixel_values=pixels["pixel_values"]).pooler_output  # layer-normed CLS token
    torch.testing.assert_close(encoder.encode_images(frames), expected, rtol=1e-5, atol=1e-6)
    texts = encoder.encode_texts(["lift the cube"])
    torch.testing.assert_close(texts, HashedTextEncoder(32)(["lift the cube"]), rtol=0, atol=0)


def test_siglip2_variable_resolution_inputs(folders):
    encoder = make_encoder(f"hf:{folders['siglip2']}")
    inputs = encoder.preprocess(_frames(2))
    assert {"pixel_values", "pixel_attention_mask", "spatial_shapes"} <= set(inputs)
    features = encoder.encode_images(_frames(2))
    assert features.shape == (2, 32) and torch.isfinite(features).all()
    assert encoder.encode_texts(["lift a red cube"]).shape == (1, 32)


@pytest.mark.parametrize("name", ["siglip", "dinov2"])
def test_rebuilt_encoder_gives_identical_features(folders, name):
    frames = _frames(4, seed=2)
    first, second = make_encoder(f"hf:{folders[name]}"), make_encoder(f"hf:{folders[name]}")
    torch.testing.assert_close(first.encode_images(frames), second.encode_images(frames), rtol=0, atol=0)
    torch.testing.assert_close(first.encode_texts(["push"]), second.encode_texts(["push"]), rtol=0, atol=0)
    assert first.encode_images(frames[:0]).shape == (0, 32)


def test_bad_folders_and_unreachable_ids_fail_clearly(folders, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="cannot load Hugging Face model"):
        make_encoder(f"hf:{tmp_path}")  # empty folder
    no_processor = tmp_path / "no_processor"
    shutil.copytree(folders["dinov2"], no_processor)
    (no_processor / "preprocessor_config.json").unlink()
    with pytest.raises(ValueError, match="Can.t load image processor"):
        make_encoder(f"hf:{no_processor}")
    with pytest.raises(ValueError, match="cannot load Hugging Face model 'nobody/no-such-model'"):
        make_encoder("hf:nobody/no-such-model")
    with pytest.raises(ValueError, match="needs an argument"):
        make_encoder("hf")
