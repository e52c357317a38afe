"""One adapter per model family, behind one small protocol the `RewardMonitor` drives.

An adapter turns the observation of one control step into the model's output for that step, keeping
whatever history the model needs itself (a causal model's ring buffer of per-frame features). It works
in two halves so that the expensive part is done once per frame:

- `encode(observation)`: the new frame's features (a frozen encoder on ONE frame per camera, or just the
  tensors the model reads);
- `step_features(features)`: push them into the history and run the model's head over it, returning
  `StepOutput(progress, success_prob, extras)`.

Adapters for rewardkit's families register themselves by model type name (`register_online_adapter`);
`make_online_model(model)` picks one. Any object with `encode`, `step_features` and `reset` is accepted
as it is, and `FunctionOnline` wraps a plain function (a scripted or external reward).

Observations are dicts in lerobot's naming (`"observation.images.<cam>"`, `"observation.state"`,
`"task"`); images may be (H, W, 3) uint8 (a robot's or a gym env's frame) or (3, H, W) float in [0, 1]
(a lerobot policy's frame), with or without a leading batch dimension of 1.

What an adapter cannot use is refused in `encode`, before anything enters the model's history
(`InvalidObservation`): a state with non-finite values or of the wrong size, a float image outside
[0, 1] (a 0-255 float frame would otherwise be clipped to white), a non-finite image. The monitor raises
it, or skips the step with `on_invalid="skip"`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from rewardkit.errors import RewardkitError

STATE_KEY = "observation.state"


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


# ---- observation helpers -----------------------------------------------------------------------
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
    state = torch.as_tensor(np.asarray(require(observation, STATE_KEY, model)), dtype=torch.float32)
    state = state.reshape(-1)
    if size is not None and state.numel() != size:
        raise InvalidObservation(
            f"{model} was trained on a {size}-dim '{STATE_KEY}', the observation has {state.numel()} values"
        )
    bad = (~torch.isfinite(state)).nonzero().flatten().tolist()
    if bad:
        raise InvalidObservation(f"'{STATE_KEY}' has non-finite values at dimensions {bad[:10]} ({model})")
    return state


# ---- generic adapters --------------------------------------------------------------------------
class FunctionOnline:
    """Wrap `fn(observation) -> progress | (progress, success_prob) | StepOutput` as an online model.

    For scripted rewards, external models, or tests: no history is kept.
    """

    def __init__(self, fn: Callable[[Mapping[str, Any]], Any]):
        self.fn = fn

    def reset(self) -> None:
        return None

    def encode(self, observation: Mapping[str, Any]) -> Mapping[str, Any]:
        return observation

    def step_features(self, features: Mapping[str, Any]) -> StepOutput:
        value = self.fn(features)
        if isinstance(value, StepOutput):
            return value
        if isinstance(value, tuple):
            progress, success_prob = value
            return StepOutput(float(progress), None if success_prob is None else float(success_prob))
        return StepOutput(float(value))


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
            features[STATE_KEY] = state_vector(observation, "the success classifier", size)[None]
        return features

    @torch.no_grad()
    def step_features(self, features: dict[str, torch.Tensor]) -> StepOutput:
        prob = float(self.model.predict_success_prob(features)[0])
        return StepOutput(progress=prob, success_prob=prob)


# ---- registry ----------------------------------------------------------------------------------
_ADAPTERS: dict[str, Callable[..., OnlineModel]] = {"rewardkit_classifier": ClassifierOnline}


def register_online_adapter(model_type: str, factory: Callable[..., OnlineModel]) -> None:
    """Let `make_online_model` run models of `model_type` (`model.name` or `model.config.type`) online."""
    _ADAPTERS[model_type] = factory


def model_type_of(model: Any) -> str:
    """The registry name of a model: its config's type, else its `name`, else its class name."""
    config = getattr(model, "config", None)
    for candidate in (getattr(config, "type", None), getattr(model, "name", None)):
        if isinstance(candidate, str) and candidate in _ADAPTERS:
            return candidate
    return str(getattr(config, "type", None) or getattr(model, "name", None) or type(model).__name__)


def make_online_model(model: Any, **kwargs: Any) -> OnlineModel:
    """An online adapter for `model`: the model itself if it already is one, a registered adapter for its
    type, or `FunctionOnline` for a plain callable. `kwargs` go to the adapter."""
    if isinstance(model, OnlineModel) and not isinstance(model, torch.nn.Module):
        return model
    _register_builtin_adapters()
    model_type = model_type_of(model)
    if model_type in _ADAPTERS:
        return _ADAPTERS[model_type](model, **kwargs)
    if callable(model) and not isinstance(model, torch.nn.Module):
        return FunctionOnline(model)
    raise RewardkitError(
        f"no online adapter for model type '{model_type}' ({type(model).__name__}); known: {sorted(_ADAPTERS)}. "
        "Register one with rewardkit.online.register_online_adapter."
    )


def _register_builtin_adapters() -> None:
    # The SARM / RewACT adapters live beside their models' families and register on import.
    from rewardkit.online import model_adapters  # noqa: F401
