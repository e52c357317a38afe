"""The zero-shot VLM progress model one observation at a time (`VLMProgressRewardModel.online()`).

Cost per step: a step that asks (every `every`-th step, and the first) sends one request with up to
`num_frames` frames sampled from the frames seen so far (gvl), or `num_frames` requests for prefixes of
that sample (logprob); the others cost nothing and repeat the last answer. So at 10 fps with a server
answering in ~1 s, use `every` >= 10 (gvl) to keep up. Answers are cached like labelling's.

Equal to labelling at step t when the sample of frames 0..t gives frame t the value labelling gives it:
always for gvl when `num_frames` >= the episode length and the server scores each frame by its content;
otherwise an approximation (labelling sees the whole episode). In logprob mode the score is min-max
normalised over the steps asked so far (labelling normalises over the whole episode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require

from .modeling_vlm_progress import minmax, sample_positions

IMAGE_PREFIX = "observation.images."


class VLMProgressOnline:
    """`VLMProgressRewardModel` online: keeps the episode's frames of one camera and asks every `every` steps.

    Args:
        model: a `VLMProgressRewardModel`.
        every: ask the server every k-th step (default: the config's `online_every`).
        camera: the observation key of the camera shown (default: the config's camera, else the first
            `observation.images.*` key in sorted order).
        task: the task text when observations carry no "task".
    """

    def __init__(
        self, model: Any, every: int | None = None, camera: str | None = None, task: str | None = None
    ):
        self.model = model
        self.config = model.config
        self.every = int(every or self.config.online_every)
        if self.every < 1:
            raise RewardkitError(f"vlm_progress online: every must be >= 1, got {every}")
        cameras = model.required_inputs().cameras
        self.camera = camera or (cameras[0] if cameras else None)
        self.task = task
        self.reset()

    def reset(self) -> None:
        self.frames: list[np.ndarray] = []
        self.log_probs: list[float] = []
        self.last: float | None = None

    def _camera_of(self, observation: Mapping[str, Any]) -> str:
        if self.camera is not None:
            return self.camera
        keys = sorted(key for key in observation if str(key).startswith(IMAGE_PREFIX))
        if not keys:
            require(observation, IMAGE_PREFIX + "<camera>", "vlm_progress")
        return keys[0]

    def encode(self, observation: Mapping[str, Any]) -> tuple[np.ndarray, str]:
        """The new frame (H, W, 3) uint8 of the camera shown, and the task text."""
        camera = self._camera_of(observation)
        frame = frame_to_uint8_hwc(require(observation, camera, "vlm_progress"), camera)
        task = observation.get("task", self.task)
        if task is None:
            require(observation, "task", "vlm_progress")
        return frame, str(task)

    def step_features(self, features: tuple[np.ndarray, str]) -> StepOutput:
        frame, task = features
        self.frames.append(frame)
        step = len(self.frames) - 1
        if self.last is not None and step % self.every != 0:
            return StepOutput(progress=self.last, extras={"asked": False})
        positions = sample_positions(len(self.frames), self.config.num_frames)
        shown = np.stack([self.frames[p] for p in positions])
        context = f"online step {step}"
        if self.config.mode == "gvl":
            self.last = float(self.model.score_frames(shown, task, context)[-1])
        else:
            self.log_probs.append(self.model.prefix_log_prob(shown, task, context))
            self.last = float(minmax(np.asarray(self.log_probs))[-1])
        return StepOutput(progress=self.last, extras={"asked": True})
