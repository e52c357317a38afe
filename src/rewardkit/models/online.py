"""The online-step protocol every model's adapter implements, and the observation helpers they share.

A reward model runs online through an adapter (`model.online(**kwargs)`, written in the model's own folder)
that turns the observation of one control step into the model's output for that step, keeping whatever
history the model needs itself. It works in two halves so that the expensive part is done once per frame:

- `encode(observation)`: the new frame's features (a frozen encoder on ONE frame per camera, or just the
  tensors the model reads); everything the model cannot use is refused here, before the history is
  touched (`InvalidObservation`: a state with non-finite values or of the wrong size, a float image
  outside [0, 1] (a 0-255 float frame would otherwise be clipped to white), a non-finite image);
- `step_features(features)`: push them into the history and run the model over it, returning
  `StepOutput(progress, success_prob, extras)`.

Observations are dicts in lerobot's naming (`"observation.images.<cam>"`, `"observation.state"`,
`"task"`); images may be (H, W, 3) uint8 (a robot's or a gym env's frame) or (3, H, W) float in [0, 1]
(a lerobot policy's frame), with or without a leading batch dimension of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from lerobot.utils.constants import OBS_STATE

from rewardkit.errors import RewardkitError


class InvalidObservation(RewardkitError):
    """An observation the model cannot use (raised by `encode`, before the history is touched)."""


@dataclass
class StepOutput:
    """What a model says about the newest observation.

    Args:
        progress: task progress in [0, 1] (a classifier's success probability).
        success_prob: P(task has succeeded), when the model has a success head (else None).
        extras: anything else the model gives (stage, RewACT's action, ...).
    """

    progress: float
    success_prob: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class OnlineModel(Protocol):
    """The adapter protocol: a reward model run one observation at a time."""

    def reset(self) -> None:
        """Forget the history (a new episode starts)."""

    def encode(self, observation: Mapping[str, Any]) -> Any:
        """The new observation's features (encoder run on this frame only)."""

    def step_features(self, features: Any) -> StepOutput:
        """Append `features` to the history and return the model's output for the newest frame."""


def frame_to_uint8_hwc(image: Any, key: str = "image") -> np.ndarray:
    """One frame in any accepted layout -> (H, W, 3) uint8 numpy.

    Accepts (H, W, 3) / (3, H, W), uint8 or float in [0, 1], numpy or torch, optionally with a leading
    batch dimension of 1.
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise RewardkitError(
            f"observation '{key}': expected one image (H, W, 3) or (3, H, W), got shape {array.shape}"
        )
    if array.shape[-1] != 3 and array.shape[0] == 3:
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] != 3:
        raise RewardkitError(f"observation '{key}': expected 3 colour channels, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise InvalidObservation(f"observation '{key}': the image has non-finite values")
        low, high = float(array.min()), float(array.max())
        if low < -1e-3 or high > 1.0 + 1e-3:
            raise InvalidObservation(
                f"observation '{key}': a float image must lie in [0, 1], got values in [{low:g}, {high:g}]; "
                "pass a uint8 frame (0-255) or divide by 255"
            )
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def require(observation: Mapping[str, Any], key: str, model: str) -> Any:
    """observation[key], or a ValueError naming the key, the model and what the observation has."""
    if key not in observation:
        raise RewardkitError(
            f"{model} needs observation key '{key}'; the observation has {sorted(observation)}"
        )
    return observation[key]


def state_vector(observation: Mapping[str, Any], model: str, size: int | None = None) -> torch.Tensor:
    """observation["observation.state"] as a (S,) float32 tensor; `InvalidObservation` when it has
    non-finite values or (with `size`) another size than the model was trained on."""
    state = torch.as_tensor(np.asarray(require(observation, OBS_STATE, model)), dtype=torch.float32)
    state = state.reshape(-1)
    if size is not None and state.numel() != size:
        raise InvalidObservation(
            f"{model} was trained on a {size}-dim '{OBS_STATE}', the observation has {state.numel()} values"
        )
    bad = (~torch.isfinite(state)).nonzero().flatten().tolist()
    if bad:
        raise InvalidObservation(f"'{OBS_STATE}' has non-finite values at dimensions {bad[:10]} ({model})")
    return state
