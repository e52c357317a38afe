"""The success classifier reward model: P(task has succeeded | camera images [, state]).

As in HIL-SERL and lerobot's reward classifier, a binary classifier over the current frame(s) gives a
sparse success signal; its probability doubles as this model's "progress" so that `rewardkit label`,
`viz`, `eval` and the online monitor treat it like any other reward model.

Two backbones (config `backbone`):
- "frozen": features of a frozen image encoder (`rewardkit.encoders`), read from the feature cache when
  training or labelling (frames are never decoded twice) and computed one frame at a time online;
  only the head below is trained.
- "finetune": a small CNN (torchvision resnet18 or a 4-layer convnet, shared by the cameras) trained end to
  end on raw frames.

The head: each camera's feature becomes a token (projection + learned camera embedding), the state
(optional) one more token; "concat" fuses them with an MLP, "attention" with a transformer layer and a
learned summary token. Output: one logit per sample.

Batch keys (B = batch, C = cameras in `config.cameras` order, D = encoder feature size):
- "image_features": (B, C, D) frozen-encoder features (frozen backbone), or
- `<camera key>`: (B, 3, H, W) float in [0, 1] or (B, H, W, 3) uint8 images (finetune backbone; the
  frozen backbone encodes them itself when "image_features" is absent);
- "observation.state": (B, S) when `use_state`;
- "success": (B,) float labels in {0, 1} (training), "weight": (B,) optional per-sample loss weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.utils.constants import OBS_STATE
from torch import Tensor, nn

from rewardkit.errors import RewardkitError
from rewardkit.models.base import EpisodeInputs, FrameOutputs, ModelInputs, RewardKitModel

from .configuration_classifier import SuccessClassifierConfig

if TYPE_CHECKING:
    from rewardkit.models.classifier.online_classifier import ClassifierOnline

FEATURES_KEY = "image_features"
LABEL_KEY = "success"
WEIGHT_KEY = "weight"

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def images_to_float(images: Tensor) -> Tensor:
    """(B, H, W, 3) uint8 or (B, 3, H, W) float/uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    if images.ndim != 4:
        raise RewardkitError(
            f"expected a batch of images (B, 3, H, W) or (B, H, W, 3), got shape {tuple(images.shape)}"
        )
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise RewardkitError(f"expected 3 colour channels, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return images.float()


def images_to_uint8_hwc(images: Tensor | np.ndarray) -> np.ndarray:
    """Images in any of the accepted layouts -> (B, H, W, 3) uint8 numpy (what frozen encoders take)."""
    tensor = torch.as_tensor(images)
    if tensor.dtype == torch.uint8 and tensor.ndim == 4 and tensor.shape[-1] == 3:
        return tensor.cpu().numpy()
    floats = images_to_float(tensor)
    return (floats.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class SmallCNN(nn.Module):
    """The finetune backbone: (B, 3, H, W) images -> (B, out_dim) features.

    "resnet18": torchvision's resnet18 without its classifier (out_dim 512); "convnet": four strided
    3x3 conv layers with group norm and global average pooling (out_dim 128). Images are resized to
    `image_size` and normalised with ImageNet statistics.
    """

    def __init__(self, kind: str, image_size: int):
        super().__init__()
        self.kind = kind
        self.image_size = image_size
        if kind == "resnet18":
            from torchvision.models import resnet18

            self.net = resnet18(weights=None)
            self.net.fc = nn.Identity()
            self.out_dim = 512
        else:
            layers: list[nn.Module] = []
            channels = 3
            for width in (32, 64, 128, 128):
                layers += [
                    nn.Conv2d(channels, width, 3, stride=2, padding=1),
                    nn.GroupNorm(8, width),
                    nn.GELU(),
                ]
                channels = width
            self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.out_dim = channels
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def load_imagenet_weights(self) -> None:
        """Replace resnet18's random initialisation with torchvision's ImageNet weights (downloads once)."""
        if self.kind != "resnet18":
            raise RewardkitError(f"ImageNet weights exist for resnet18 only, not {self.kind!r}")
        from torchvision.models import ResNet18_Weights, resnet18

        state = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1).state_dict()
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.net.load_state_dict(state, strict=False)

    def forward(self, images: Tensor) -> Tensor:
        x = images_to_float(images)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return self.net((x - self.mean) / self.std)


class SuccessClassifierRewardModel(RewardKitModel):
    """Success classifier over one or more cameras (+ state); see the module docstring for batch keys."""

    config_class: ClassVar[type[SuccessClassifierConfig]] = SuccessClassifierConfig
    name: ClassVar[str] = "rewardkit_classifier"

    def __init__(self, config: SuccessClassifierConfig, **kwargs: Any):
        super().__init__(config)
        if not config.cameras:
            raise RewardkitError(
                "SuccessClassifierConfig.cameras is empty: name the camera keys the model reads"
            )
        if config.use_state and config.state_dim <= 0:
            raise RewardkitError("use_state=True needs state_dim > 0 (the size of observation.state)")
        self.config = config
        hidden = config.hidden_dim
        if config.backbone == "finetune":
            self.cnn = SmallCNN(config.cnn, config.image_size)
            in_dim = self.cnn.out_dim
        else:
            self.cnn = None
            in_dim = config.feature_dim
            # Per-dimension statistics of the training features: frozen features vary little between
            # frames of one scene (a few % of their norm), so the head reads them standardised.
            self.register_buffer("feature_mean", torch.zeros(in_dim))
            self.register_buffer("feature_std", torch.ones(in_dim))
        self.image_projection = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden))
        self.camera_embedding = nn.Parameter(torch.zeros(len(config.cameras), hidden))
        self.state_projection = nn.Linear(config.state_dim, hidden) if config.use_state else None
        num_tokens = len(config.cameras) + int(config.use_state)
        if config.camera_fusion == "attention":
            self.summary_token = nn.Parameter(torch.zeros(1, 1, hidden))
            self.fusion = nn.TransformerEncoderLayer(
                hidden,
                nhead=4 if hidden % 4 == 0 else 1,
                dim_feedforward=2 * hidden,
                dropout=config.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 1))
        else:
            self.summary_token = None
            self.fusion = None
            self.head = nn.Sequential(
                nn.Linear(hidden * num_tokens, hidden),
                nn.LayerNorm(hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(hidden, 1),
            )
        self._frozen_encoder: Any = None  # built lazily, never part of the state dict

    # ---- parts ---------------------------------------------------------------------------------
    def frozen_encoder(self) -> Any:
        """The frozen image encoder (backbone="frozen"), built on first use and not saved."""
        if self.config.backbone != "frozen":
            raise RewardkitError("frozen_encoder() is only defined for backbone='frozen'")
        if self._frozen_encoder is None:
            from rewardkit.encoders import make_encoder

            self._frozen_encoder = make_encoder(self.config.encoder)
        return self._frozen_encoder

    def encode_frames(self, camera_images: list[Tensor | np.ndarray]) -> Tensor:
        """Frozen-encoder features of C cameras' images (each (B, H, W, 3) or (B, 3, H, W)): (B, C, D)."""
        if self.config.backbone != "frozen":
            raise RewardkitError("encode_frames() is only used with backbone='frozen'")
        encoder = self.frozen_encoder()
        per_camera = [
            torch.as_tensor(np.asarray(encoder.encode_images(images_to_uint8_hwc(images)))).float()
            for images in camera_images
        ]
        features = torch.stack(per_camera, dim=1)
        if features.shape[-1] != self.config.feature_dim:
            raise RewardkitError(
                f"encoder {self.config.encoder!r} gives features of size {features.shape[-1]}, the model "
                f"was built for {self.config.feature_dim}"
            )
        return features

    def _camera_tokens(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, C, hidden) camera tokens from the batch (features or images)."""
        cams = self.config.cameras
        if self.cnn is not None:
            missing = [c for c in cams if c not in batch]
            if missing:
                raise RewardkitError(f"batch is missing camera image(s) {missing} (model cameras: {cams})")
            batch_size = batch[cams[0]].shape[0]
            images = torch.cat([images_to_float(torch.as_tensor(batch[c])) for c in cams], dim=0)
            features = self.cnn(images.to(self.camera_embedding.device))
            features = features.view(len(cams), batch_size, -1).transpose(0, 1)
        elif FEATURES_KEY in batch:
            features = torch.as_tensor(batch[FEATURES_KEY])
            if features.ndim != 3 or features.shape[1:] != (len(cams), self.config.feature_dim):
                raise RewardkitError(
                    f"'{FEATURES_KEY}' must be (B, {len(cams)}, {self.config.feature_dim}) for cameras {cams}, "
                    f"got {tuple(features.shape)}"
                )
        else:
            missing = [c for c in cams if c not in batch]
            if missing:
                raise RewardkitError(f"batch has neither '{FEATURES_KEY}' nor camera image(s) {missing}")
            features = self.encode_frames([batch[c] for c in cams])
        features = features.to(self.camera_embedding.device, torch.float32)
        if self.cnn is None:
            features = (features - self.feature_mean) / self.feature_std
        return self.image_projection(features) + self.camera_embedding

    def logits_from_tokens(self, camera_tokens: Tensor, state: Tensor | None) -> Tensor:
        """(B, C, hidden) camera tokens [+ (B, S) state] -> (B,) success logits."""
        tokens = camera_tokens
        if self.state_projection is not None:
            if state is None:
                raise RewardkitError(
                    f"this classifier reads '{OBS_STATE}' (use_state=True) but the batch has none"
                )
            state = torch.as_tensor(state).to(tokens.device, torch.float32)
            if state.ndim != 2 or state.shape[1] != self.config.state_dim:
                raise RewardkitError(
                    f"'{OBS_STATE}' must be (B, {self.config.state_dim}), got {tuple(state.shape)}"
                )
            tokens = torch.cat([tokens, self.state_projection(state).unsqueeze(1)], dim=1)
        if self.fusion is not None:
            summary = self.summary_token.expand(tokens.shape[0], -1, -1)
            fused = self.fusion(torch.cat([summary, tokens], dim=1))[:, 0]
            return self.head(fused).squeeze(-1)
        return self.head(tokens.flatten(1)).squeeze(-1)

    def logits(self, batch: dict[str, Tensor]) -> Tensor:
        """Success logits, (B,)."""
        return self.logits_from_tokens(self._camera_tokens(batch), batch.get(OBS_STATE))

    # ---- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_success_prob(self, batch: dict[str, Tensor]) -> Tensor:
        """P(success) per sample, (B,) in [0, 1]."""
        return torch.sigmoid(self.logits(batch))

    @torch.no_grad()
    def predict_progress(self, batch: dict[str, Tensor]) -> Tensor:
        """The success probability, (B,) in [0, 1] (this model's progress signal)."""
        return self.predict_success_prob(batch)

    @torch.no_grad()
    def predict_success(self, batch: dict[str, Tensor]) -> Tensor:
        """1.0 where P(success) >= config.threshold, else 0.0; (B,)."""
        return (self.predict_success_prob(batch) >= self.config.threshold).float()

    def online(self) -> ClassifierOnline:
        """This classifier one observation at a time (stateless: it reads the current frames)."""
        from rewardkit.models.classifier.online_classifier import ClassifierOnline

        return ClassifierOnline(self)

    def required_inputs(self) -> ModelInputs:
        frozen = self.config.backbone == "frozen"
        return ModelInputs(
            cameras=list(self.config.cameras),
            encoder=self.config.encoder if frozen else None,
            state=self.config.use_state,
        )

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs, batch_size: int = 256) -> FrameOutputs:
        """Every frame's success probability for one episode: "progress" and "success_prob", (T,)."""
        length = inputs.length
        cams = self.config.cameras
        if self.config.backbone == "frozen":
            if not inputs.image_features:
                raise RewardkitError(f"episode {inputs.episode_index}: no cached image features given")
            missing = [c for c in cams if c not in inputs.image_features]
            if missing:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: no cached features for camera(s) {missing}"
                )
            features = torch.stack(
                [torch.as_tensor(np.asarray(inputs.image_features[c])).float() for c in cams], dim=1
            )
            sources: dict[str, Any] = {FEATURES_KEY: features}
        else:
            if inputs.frames is None:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: the finetune classifier needs decoded frames"
                )
            sources = {c: torch.as_tensor(np.asarray(inputs.frames(c))) for c in cams}
        for key, value in sources.items():
            if value.shape[0] != length:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: '{key}' has {value.shape[0]} frames, episode has {length}"
                )
        if self.config.use_state:
            if inputs.state is None:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: this classifier needs observation.state"
                )
            sources[OBS_STATE] = torch.as_tensor(np.asarray(inputs.state)).float()
        was_training = self.training
        self.eval()
        probs = []
        for start in range(0, length, batch_size):
            chunk = {k: v[start : start + batch_size] for k, v in sources.items()}
            probs.append(self.predict_success_prob(chunk).float().cpu())
        self.train(was_training)
        success_prob = torch.cat(probs).numpy().astype(np.float32) if probs else np.zeros(0, np.float32)
        return {"progress": success_prob, "success_prob": success_prob.copy()}

    # ---- training ------------------------------------------------------------------------------
    def set_feature_statistics(self, features: Tensor | np.ndarray) -> None:
        """Set the frozen-feature standardisation from training features (N, C, D) (or (N, D))."""
        if self.cnn is not None:
            raise RewardkitError("feature statistics are only used with backbone='frozen'")
        flat = torch.as_tensor(np.asarray(features), dtype=torch.float32).reshape(-1, self.config.feature_dim)
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-4) if flat.shape[0] > 1 else torch.ones_like(flat[0]))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Binary cross-entropy on batch["success"] (B,), optionally weighted by batch["weight"] (B,)."""
        if LABEL_KEY not in batch:
            raise RewardkitError(f"training batch needs '{LABEL_KEY}' labels (B,) in {{0, 1}}")
        logits = self.logits(batch)
        labels = torch.as_tensor(batch[LABEL_KEY]).to(logits.device, torch.float32)
        weight = batch.get(WEIGHT_KEY)
        if weight is not None:
            weight = torch.as_tensor(weight).to(logits.device, torch.float32)
        loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
        with torch.no_grad():
            predicted = (torch.sigmoid(logits) >= self.config.threshold).float()
            accuracy = (predicted == labels).float().mean().item()
        return loss, {"loss": loss.item(), "accuracy": accuracy}
