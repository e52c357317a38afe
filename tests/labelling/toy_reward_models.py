"""A small rewardkit model for the labelling, evaluation and viz tests (no download, no training).

It reads whatever its config asks for and turns it into progress with a fixed rule, so the tests know
the right answer: state[0] (the synthetic datasets put progress there), the moving square's x position in
the frames, or column 0 of cached features. Stage probabilities peak at stage floor(progress * K).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from lerobot.configs.rewards import RewardModelConfig
from torch import nn

from rewardkit.models.base import EpisodeInputs, ModelInputs, RewardKitConfig, RewardKitModel


@RewardModelConfig.register_subclass("rewardkit_test_toy_progress")
@dataclass
class ToyProgressConfig(RewardKitConfig):
    """Test-only progress model.

    Args:
        source: "state" (state[0]), "frames" (square position) or "features" (cached feature column 0).
        cameras: camera keys read.
        encoder: encoder spec of the cached features (source "features").
        num_stages: number of stages K.
        dense: also return "progress_dense" (= progress squared) and dense stages.
        honours_stride: compute only `EpisodeInputs.frame_indices` when given.
        log_prob: also return a raw "log_prob" score (a zero-shot VLM's extra output).
    """

    source: str = "state"
    cameras: list[str] = field(default_factory=lambda: ["observation.images.top"])
    encoder: str | None = None
    num_stages: int = 3
    dense: bool = False
    honours_stride: bool = True
    log_prob: bool = False


class ToyProgressRewardModel(RewardKitModel):
    config_class = ToyProgressConfig
    name = "rewardkit_test_toy_progress"

    def __init__(self, config: ToyProgressConfig, **kwargs):
        super().__init__(config)
        self.scale = nn.Parameter(torch.ones(1))
        self.calls: list[EpisodeInputs] = []

    def required_inputs(self) -> ModelInputs:
        c = self.config
        return ModelInputs(
            cameras=list(c.cameras) if c.source != "state" else [],
            encoder=c.encoder if c.source == "features" else None,
            state=c.source == "state",
        )

    def _progress(self, inputs: EpisodeInputs) -> np.ndarray:
        c = self.config
        if c.source == "state":
            return np.asarray(inputs.state)[:, 0]
        if c.source == "features":
            return np.asarray(inputs.image_features[c.cameras[0]], dtype=np.float32)[:, 0]
        frames = inputs.frames(c.cameras[0]).astype(np.float32)  # (T, H, W, 3)
        spread = frames.max(-1) - frames.min(-1)  # the coloured square has a large channel spread
        columns = spread.max(axis=1)  # (T, W)
        width = frames.shape[2]
        square = max(2, width // 6)
        left = columns.argmax(axis=1)  # (chroma subsampling blurs a tiny square: take the strongest column)
        return left / (width - square)

    def label_episode(self, inputs: EpisodeInputs) -> dict:
        self.calls.append(inputs)
        progress = np.clip(self._progress(inputs), 0.0, 1.0).astype(np.float32) * float(self.scale.detach())
        if self.config.honours_stride and inputs.frame_indices is not None:
            progress = progress[inputs.frame_indices]
        k = self.config.num_stages
        centres = (np.arange(k) + 0.5) / k
        logits = -((progress[:, None] - centres[None]) ** 2) * 50
        stage_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        out = {"progress": torch.from_numpy(progress), "stage_probs": stage_probs, "success_prob": progress}
        if self.config.log_prob:
            out["log_prob"] = np.log(progress + 1e-3) - 1.0  # a raw, unnormalised score (negative)
        if self.config.dense:
            out["progress_dense"] = progress**2
            out["stage_probs_dense"] = stage_probs
        return out

    def predict_progress(self, batch):
        return batch["observation.state"][:, 0].clamp(0, 1)


def save_toy(path, **config) -> str:
    """Save a toy model checkpoint at `path`; returns the path as a string."""
    ToyProgressRewardModel(ToyProgressConfig(device="cpu", **config)).save_pretrained(path)
    return str(path)
