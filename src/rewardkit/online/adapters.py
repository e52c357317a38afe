"""How the `RewardMonitor` gets an online adapter for a model, and adapters that are not models.

Every rewardkit model brings its own adapter (`model.online(**kwargs)`, written in the model's folder
beside the model: it knows the model's internals); the protocol it implements (`OnlineModel`,
`StepOutput`) and the observation helpers live in `rewardkit.models.online`. Here:

- `make_online_model(model)`: the model's own `online()`, an adapter registered for its type
  (`register_online_adapter`, for models from elsewhere), the object itself when it already is an
  adapter, or `FunctionOnline` for a plain function (a scripted or external reward).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from rewardkit.errors import RewardkitError
from rewardkit.models.online import (
    InvalidObservation,
    OnlineModel,
    StepOutput,
    frame_to_uint8_hwc,
    require,
    state_vector,
)

__all__ = [
    "FunctionOnline",
    "InvalidObservation",
    "OnlineModel",
    "StepOutput",
    "frame_to_uint8_hwc",
    "make_online_model",
    "register_online_adapter",
    "require",
    "state_vector",
]


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


# ---- registry (models that do not bring their own `online()`) ------------------------------------
_ADAPTERS: dict[str, Callable[..., OnlineModel]] = {}


def register_online_adapter(model_type: str, factory: Callable[..., OnlineModel]) -> None:
    """Let `make_online_model` run models of `model_type` (`model.config.type` or `model.name`) online,
    for models that have no `online()` method of their own."""
    _ADAPTERS[model_type] = factory


def model_type_of(model: Any) -> str:
    """The registry name of a model: its config's type, else its `name`, else its class name."""
    config = getattr(model, "config", None)
    for candidate in (getattr(config, "type", None), getattr(model, "name", None)):
        if isinstance(candidate, str) and candidate in _ADAPTERS:
            return candidate
    return str(getattr(config, "type", None) or getattr(model, "name", None) or type(model).__name__)


def make_online_model(model: Any, **kwargs: Any) -> OnlineModel:
    """An online adapter for `model` (see the module docstring). `kwargs` go to the adapter."""
    if isinstance(model, OnlineModel) and not isinstance(model, torch.nn.Module):
        return model
    model_type = model_type_of(model)
    if model_type in _ADAPTERS:
        return _ADAPTERS[model_type](model, **kwargs)
    if callable(getattr(model, "online", None)):
        return model.online(**kwargs)
    if callable(model) and not isinstance(model, torch.nn.Module):
        return FunctionOnline(model)
    raise RewardkitError(
        f"no online adapter for model type '{model_type}' ({type(model).__name__}): it has no online() "
        f"method and none is registered (registered: {sorted(_ADAPTERS)}). "
        "Register one with rewardkit.online.register_online_adapter."
    )
