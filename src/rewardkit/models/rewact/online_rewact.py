"""RewACT, one observation at a time (`RewACTPolicy.online()`).

Each step runs the policy's reward path (`predict_reward`, backbone + encoder + decoder query 0)
on the current frames, after the checkpoint's pre-processor (normalisation); with `act=True` it runs
`select_action` instead and returns the action in `extras["action"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lerobot.utils.constants import OBS_STATE

from rewardkit.errors import RewardkitError
from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require, state_vector


class RewactOnline:
    """RewACT's reward (and optionally its action) one observation at a time.

    Args:
        policy: a `RewACTPolicy` (with `policy.preprocessor` set, as `rewardkit.load` does, unless the
            observations given are already normalised).
        act: run `select_action` (action + reward, ACT's action queue) instead of `predict_reward`; the
            (normalised) action goes to `extras["action"]`.
    """

    def __init__(self, policy: Any, act: bool = False):
        self.policy = policy.eval()
        self.config = policy.config
        self.act = act
        self.cameras = list(self.config.image_features)
        self.device = next(policy.parameters()).device

    def reset(self) -> None:
        self.policy.reset()

    @torch.no_grad()
    def encode(self, observation: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The policy's input batch: cameras (1, 3, H, W) float in [0, 1], state (1, S), normalised."""
        batch: dict[str, Any] = {}
        for cam in self.cameras:
            frame = frame_to_uint8_hwc(require(observation, cam, "RewACT"), cam)
            batch[cam] = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div_(255.0)
        if self.config.robot_state_feature is not None:
            size = int(self.config.robot_state_feature.shape[0])
            batch[OBS_STATE] = state_vector(observation, "RewACT", size)[None]
        if self.policy.preprocessor is not None:
            batch = self.policy.preprocessor(batch)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    @torch.no_grad()
    def step_features(self, features: dict[str, torch.Tensor]) -> StepOutput:
        if self.act:
            result = self.policy.select_action(features)
            if not isinstance(result, tuple):
                raise RewardkitError("RewACT config.return_reward is false: select_action gives no reward")
            action, reward = result
            return StepOutput(progress=float(reward.reshape(-1)[0]), extras={"action": action})
        return StepOutput(progress=float(self.policy.predict_reward(features).reshape(-1)[0]))
