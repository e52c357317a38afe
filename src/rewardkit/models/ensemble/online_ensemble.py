"""The ensemble one observation at a time (`EnsembleRewardModel.online()`).

Each member steps its own online adapter (its own history) on the same observation; the step's progress is
the members' mean, its spread in `extras["progress_std"]`, as `label_episode` gives them for a recorded
episode. Members reading a frozen encoder share ONE encoder, which encodes a frame once for all of them
(`SharedEncoder`): a step costs one encoder pass, not K.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rewardkit.errors import RewardkitError
from rewardkit.models.ensemble.modeling_ensemble import same_stage_names
from rewardkit.models.online import StepOutput


class SharedEncoder:
    """A frozen encoder shared by the members: images equal to the previous call's are not encoded again
    (every member encodes the same frame in turn). Everything else is the wrapped encoder's."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._last: tuple[np.ndarray, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode_images(self, images: Any) -> Any:
        """The wrapped encoder's `encode_images`, memoised on the last (B, H, W, 3) uint8 array."""
        if not isinstance(images, np.ndarray):
            return self.encoder.encode_images(images)
        if (
            self._last is not None
            and self._last[0].shape == images.shape
            and np.array_equal(self._last[0], images)
        ):
            features = self._last[1]
        else:
            features = self.encoder.encode_images(images)
            self._last = (images.copy(), features)
        # a member may write into what it gets: each gets its own copy
        return features.clone() if isinstance(features, torch.Tensor) else np.array(features)


def _accepts(function: Any, name: str) -> bool:
    parameters = inspect.signature(function).parameters
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class EnsembleOnline:
    """Every member's online adapter stepped on the same observations (see the module docstring).

    Args:
        model: an `EnsembleRewardModel`.
        kwargs: passed to each member's `online()` (e.g. `task=` for a SARM; `encoder=` to share one of
            your own).
    """

    def __init__(self, model: Any, **kwargs: Any) -> None:
        encoder_spec = model.required_inputs().encoder
        shared = None
        if encoder_spec is not None and all(_accepts(m.online, "encoder") for m in model.members):
            encoder = kwargs.get("encoder")
            if encoder is None:
                from rewardkit.encoders import make_encoder

                encoder = make_encoder(encoder_spec)
            shared = SharedEncoder(encoder)
        member_kwargs = {**kwargs, "encoder": shared} if shared is not None else kwargs
        self.adapters = [member.online(**member_kwargs) for member in model.members]
        self._same_stages = same_stage_names(model.members, "stage_probs")

    def reset(self) -> None:
        for adapter in self.adapters:
            adapter.reset()

    def encode(self, observation: Mapping[str, Any]) -> list[Any]:
        """Each member's features of the observation (no member's history is touched: a member that
        refuses the observation refuses it before any step)."""
        return [adapter.encode(observation) for adapter in self.adapters]

    def step_features(self, features: list[Any]) -> StepOutput:
        """Step every member; progress = their mean, success_prob = their mean when every member gives
        one, extras: "progress_std" (population std) and "member_progress" (each member's), and, when every
        member gives them over the same stages, "stage_probs" (K,) their mean renormalised and "stage" its
        argmax (as `label_episode`'s stage_probs)."""
        if len(features) != len(self.adapters):
            raise RewardkitError(
                f"the ensemble has {len(self.adapters)} members, step_features got {len(features)} features"
            )
        outputs = [adapter.step_features(f) for adapter, f in zip(self.adapters, features, strict=True)]
        progress = np.array([o.progress for o in outputs], dtype=np.float64)
        success = [o.success_prob for o in outputs]
        extras: dict[str, Any] = {"progress_std": float(progress.std()), "member_progress": progress.tolist()}
        stage_probs = [o.extras.get("stage_probs") for o in outputs]
        if self._same_stages and all(p is not None for p in stage_probs):
            rows = [np.asarray(p, np.float64).reshape(-1) for p in stage_probs]
            if len({len(row) for row in rows}) == 1:
                mean = np.stack(rows).mean(0)  # (K,)
                extras["stage_probs"] = (mean / mean.sum()).astype(np.float32)
                extras["stage"] = int(mean.argmax())
        return StepOutput(
            progress=float(progress.mean()),
            success_prob=None if any(s is None for s in success) else float(np.mean(success)),
            extras=extras,
        )
