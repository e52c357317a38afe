"""Robometer, one observation at a time (`RewardkitRobometerRewardModel.online()`).

Each scored step runs one Robometer query on frames of the episode so far, sampled as labelling samples
them (round(linspace(0, t, K)) of the history), so an online step equals the label of the same frame.
The cost of a scored step is one forward pass of the Qwen3-VL over K images and the prompt (see the
README for measured numbers); with `every=k` only every k-th step (and the first) is scored and the steps
between repeat the last score, dividing the average cost by k.

The adapter keeps every frame of the episode (the query spans [0, t]): H * W * 3 bytes per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require


class RobometerOnline:
    """Robometer's progress and success probability, one observation at a time.

    Args:
        model: a `RewardkitRobometerRewardModel`.
        every: score every k-th step (and the first); default the config's `online_every`.
        task: the task text (default: the observation's "task", then the config's `default_task`).
    """

    def __init__(self, model: Any, every: int | None = None, task: str | None = None):
        from rewardkit.errors import RewardkitError

        self.model = model.eval()
        self.camera = model.config.image_key
        self.every = model.config.online_every if every is None else int(every)
        if self.every < 1:
            raise RewardkitError(f"every must be >= 1, got {every}")
        self.task = task
        self.reset()

    def reset(self) -> None:
        self.frames: list[np.ndarray] = []
        self.last: StepOutput | None = None

    def encode(self, observation: Mapping[str, Any]) -> tuple[np.ndarray, str]:
        """(the camera's frame (H, W, 3) uint8, the task text)."""
        frame = frame_to_uint8_hwc(require(observation, self.camera, "Robometer"), self.camera)
        task = self.task or observation.get("task")
        return frame, self.model.task_text(task if isinstance(task, str) else None, "the observation")

    def step_features(self, features: tuple[np.ndarray, str]) -> StepOutput:
        frame, task = features
        self.frames.append(frame)
        t = len(self.frames) - 1
        if self.last is not None and t % self.every != 0:
            return self.last
        clip = np.stack([self.frames[i] for i in self.model.query_positions(t)])
        progress, success = self.model.score_queries([clip], task)
        self.last = StepOutput(progress=float(progress[0]), success_prob=float(success[0]))
        return self.last
