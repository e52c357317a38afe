"""Configuration of the success classifier reward model (`--model.type=rewardkit_classifier`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.rewards import RewardModelConfig
from lerobot.optim import AdamWConfig

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardKitConfig

BACKBONES = ("frozen", "finetune")
CNNS = ("resnet18", "convnet")
CAMERA_FUSIONS = ("concat", "attention")


@RewardModelConfig.register_subclass("rewardkit_classifier")
@dataclass
class SuccessClassifierConfig(RewardKitConfig):
    """A binary success classifier: camera images (+ optionally the state) -> P(task has succeeded).

    Args:
        cameras: camera keys read, in this order (empty: every camera of the training dataset).
        backbone: "frozen": a frozen image encoder whose features come from the feature cache (training,
            labelling) or are computed on one frame at a time (online), with a small trainable head;
            "finetune": a small CNN (torchvision resnet18) trained end to end on raw frames.
        encoder: frozen-encoder spec (`rewardkit.encoders.make_encoder`), used when backbone="frozen".
        feature_dim: size of the frozen encoder's features (filled in at training time).
        cnn: the finetune backbone: "resnet18" (torchvision) or "convnet" (four strided conv layers, 128
            features: fast on CPU, for small images).
        image_size: frames are resized to image_size x image_size for the finetune backbone.
        pretrained_cnn: start the finetune backbone from torchvision's ImageNet weights (downloads
            them once; resnet18 only); False trains it from a random initialisation (offline).
        use_state: also read `observation.state`.
        state_dim: size of `observation.state` (filled in at training time when use_state).
        hidden_dim: width of the per-camera projection and of the head.
        camera_fusion: "concat" (one MLP over the concatenated camera tokens) or "attention" (a
            transformer layer over the camera (+state) tokens with a learned summary token).
        dropout: dropout in the head.
        threshold: decision threshold on the success probability (for `predict_success` and accuracy).
    """

    cameras: list[str] = field(default_factory=list)
    backbone: str = "frozen"
    encoder: str = "clip:openai/clip-vit-base-patch32"
    feature_dim: int = 512
    cnn: str = "resnet18"
    image_size: int = 128
    pretrained_cnn: bool = False
    use_state: bool = False
    state_dim: int = 0
    hidden_dim: int = 256
    camera_fusion: str = "concat"
    dropout: float = 0.1
    threshold: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backbone not in BACKBONES:
            raise RewardkitError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.cnn not in CNNS:
            raise RewardkitError(f"cnn must be one of {CNNS}, got {self.cnn!r}")
        if self.camera_fusion not in CAMERA_FUSIONS:
            raise RewardkitError(f"camera_fusion must be one of {CAMERA_FUSIONS}, got {self.camera_fusion!r}")
        if not 0.0 < self.threshold < 1.0:
            raise RewardkitError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.feature_dim <= 0 or self.hidden_dim <= 0 or self.image_size < 16:
            raise RewardkitError(
                f"need feature_dim > 0, hidden_dim > 0 and image_size >= 16, got {self.feature_dim}, "
                f"{self.hidden_dim}, {self.image_size}"
            )

    def get_optimizer_preset(self) -> AdamWConfig:
        """AdamW, lr 3e-4, weight decay 1e-4 (no scheduler preset: the trainer decays the learning rate by a
        cosine to lr/10 over the run, without warm-up)."""
        return AdamWConfig(lr=3e-4, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8)
