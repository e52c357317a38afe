"""The causal SARM, one observation at a time (`SARMRewardModel.online()`).

Each step encodes ONE new frame per camera with the frozen encoder. With the sliding architecture
(the causal default) the new frame alone then goes through each layer of both transformers, attending to
the cached keys and values of the frames 1..band gaps before it (`SARMRewardModel.online_stream`); with
lerobot's layout its features go into a ring buffer of the last `n_obs_steps * frame_gap + 1` frames and
both transformers run over the window gathered from it. Either way the windows are clamped to the first
frame since reset, exactly as `window_indices` does when labelling a recorded episode, so the online
progress equals the episode's labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rewardkit.errors import RewardkitError
from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require, state_vector


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A floating torch dtype from itself or its name ("bfloat16", "bf16", "float32", ...); None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        name = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(str(dtype), str(dtype))
        resolved = getattr(torch, name, None)
    if resolved is not None and (not isinstance(resolved, torch.dtype) or not resolved.is_floating_point):
        raise RewardkitError(
            f"dtype must be a floating torch dtype or its name (bfloat16, float16, float32), got {dtype!r}"
        )
    return resolved


class SarmOnline:
    """Causal SARM one observation at a time (see the module docstring).

    Args:
        model: a `SARMRewardModel` with a causal window.
        task: the task text (default: `observation["task"]` at each step).
        encoder: the frozen encoder (default: built from `model.config.encoder`); pass one to share it.
        dtype: run the transformers on a copy of the weights in this dtype (`torch.bfloat16` or
            "bfloat16": half the weight memory read per step, which bounds the default-size step);
            None: the model's own. The encoder and the model passed in are left as they are.
    """

    def __init__(
        self, model: Any, task: str | None = None, encoder: Any = None, dtype: torch.dtype | str | None = None
    ):
        config = model.config
        if config.window != "causal":
            raise RewardkitError(
                f"SARM window '{config.window}' needs future frames; only a causal SARM (window='causal') "
                "can run online"
            )
        if not config.cameras:
            raise RewardkitError("the SARM config names no cameras; train it (or set config.cameras) first")
        dtype = resolve_dtype(dtype)
        if dtype is not None and dtype != model.compute_dtype:
            from rewardkit.precision import low_precision_copy

            model = low_precision_copy(model, dtype)
        self.model = model.eval()
        self.dtype = model.compute_dtype
        self.config = config
        self.task = task
        if encoder is None:
            from rewardkit.encoders import make_encoder

            encoder = make_encoder(config.encoder)
        self.encoder = encoder
        self.offsets = np.asarray(config.window_offsets, dtype=np.int64)  # (W,), last is 0
        self.history = int(-self.offsets.min()) + 1
        self.device = next(model.parameters()).device
        self._text_features: dict[str, torch.Tensor] = {}
        self.stream = model.online_stream() if config.architecture == "sliding" else None
        self.reset()

    def reset(self) -> None:
        self.frame_count = 0
        if self.stream is not None:
            self.stream.reset()
        self._features: torch.Tensor | None = None  # (history, N, D) ring buffer
        self._states: torch.Tensor | None = None  # (history, S) ring buffer

    def text_features(self, task: str) -> torch.Tensor:
        """(D,) text features of `task`, encoded once per task."""
        if task not in self._text_features:
            self._text_features[task] = self.encoder.encode_texts([task])[0].to(self.device, torch.float32)
        return self._text_features[task]

    @torch.no_grad()
    def encode(self, observation: Mapping[str, Any]) -> dict[str, Any]:
        """(N, D) features of the current frame of each camera (one encoder call when sizes match)."""
        frames = [frame_to_uint8_hwc(require(observation, cam, "SARM"), cam) for cam in self.config.cameras]
        if len({f.shape for f in frames}) == 1:
            features = self.encoder.encode_images(np.stack(frames))
        else:
            features = torch.cat([self.encoder.encode_images(f[None]) for f in frames])
        task = self.task if self.task is not None else observation.get("task")
        if not task:
            raise RewardkitError(
                "SARM needs the task text: pass task=... to the monitor or 'task' in the observation"
            )
        out: dict[str, Any] = {
            "image": torch.as_tensor(features).to(self.device, torch.float32),
            "task": task,
        }
        if self.config.use_state:
            size = len(self.config.state_mean) if self.config.state_mean else None
            out["state"] = state_vector(observation, "SARM", size).to(self.device)
        return out

    @torch.no_grad()
    def step_features(self, features: dict[str, Any]) -> StepOutput:
        if self.stream is not None:
            outputs = self.stream.step(
                features["image"], self.text_features(features["task"]), features.get("state")
            )
            self.frame_count += 1
            progress, probs = outputs["sparse"]
            return StepOutput(progress=progress, extras={"stage": int(probs.argmax()), "stage_probs": probs})
        image = features["image"]
        if self._features is None:
            self._features = image.new_zeros((self.history, *image.shape))
        slot = self.frame_count % self.history
        self._features[slot] = image
        state = features.get("state")
        if state is not None:
            if self._states is None:
                self._states = state.new_zeros((self.history, state.shape[0]))
            self._states[slot] = state
        # Window frames (absolute indices), clamped to the first frame, then mapped to ring slots.
        frames = np.clip(self.frame_count + self.offsets, 0, None)
        slots = torch.as_tensor(frames % self.history, device=self.device)
        batch = {
            "image_features": self._features[slots].transpose(0, 1)[None],  # (1, N, W, D)
            "text_features": self.text_features(features["task"])[None],  # (1, D)
        }
        if state is not None:
            batch["state"] = self._states[slots][None]  # (1, W, S)
        self.frame_count += 1
        current = self.config.current_position
        progress, stage_probs = self.model.predict_scheme(batch, "sparse")
        extras = {
            "stage": int(stage_probs[0, current].argmax()),
            "stage_probs": stage_probs[0, current].cpu().numpy(),
        }
        return StepOutput(progress=float(progress[0, current]), extras=extras)
