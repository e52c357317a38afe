"""The success classifier, one observation at a time (`SuccessClassifierRewardModel.online()`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lerobot.utils.constants import OBS_STATE

from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require, state_vector


class ClassifierOnline:
    """The success classifier, one observation at a time (stateless: it reads the current frames)."""

    def __init__(self, model: Any):
        self.model = model.eval()
        self.config = model.config

    def reset(self) -> None:
        return None

    @torch.no_grad()
    def encode(self, observation: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Frozen backbone: (1, C, D) features of the current frames; finetune: (1, H, W, 3) images."""
        frames = {
            cam: frame_to_uint8_hwc(require(observation, cam, "the success classifier"), cam)[None]
            for cam in self.config.cameras
        }
        features: dict[str, torch.Tensor] = {}
        if self.config.backbone == "frozen":
            features["image_features"] = self.model.encode_frames([frames[c] for c in self.config.cameras])
        else:
            features.update({cam: torch.from_numpy(frame) for cam, frame in frames.items()})
        if self.config.use_state:
            size = self.config.state_dim or None
            features[OBS_STATE] = state_vector(observation, "the success classifier", size)[None]
        return features

    @torch.no_grad()
    def step_features(self, features: dict[str, torch.Tensor]) -> StepOutput:
        prob = float(self.model.predict_success_prob(features)[0])
        return StepOutput(progress=prob, success_prob=prob)
