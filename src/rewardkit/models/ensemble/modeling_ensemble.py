"""A deep ensemble of reward models: K models of one type (typically one SARM trained with K seeds) run as one.

Every member labels the same episode; the ensemble reports the members' mean as `progress` and their
population standard deviation (ddof=0) as `progress_std`, per frame. Where the members were trained alike
and disagree, the data is unlike what they saw: `progress_std` points a user at the frames and episodes to
look at (Lakshminarayanan et al., 2017, "Simple and scalable predictive uncertainty estimation using deep
ensembles"). A dense head's progress and a success probability are averaged too when every member has them,
and so are stage probabilities when every member gives them over the same stages (names and count).

One checkpoint folder: config.json holds each member's full config (`EnsembleConfig.members`), one
model.safetensors every member's weights under `members.<k>.`; it loads strictly through `rewardkit.load`
like any other model. `combine_checkpoints` (or `rewardkit ensemble`) builds it from K checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import draccus
import numpy as np
import torch
from lerobot.configs.rewards import RewardModelConfig
from torch import Tensor, nn

from rewardkit.errors import RewardkitError
from rewardkit.models.base import (
    CheckpointError,
    EpisodeInputs,
    FrameOutputs,
    ModelInputs,
    RewardKitConfig,
    RewardKitModel,
    import_model_modules,
    model_class_for,
)

from .configuration_ensemble import ENSEMBLE_TYPE, EnsembleConfig

if TYPE_CHECKING:
    from rewardkit.models.ensemble.online_ensemble import EnsembleOnline

# Per-frame outputs averaged over the members when every member gives them (besides `progress`).
AVERAGED_OUTPUTS = ("progress_dense", "success_prob")
# (F, K) stage probabilities averaged (then renormalised per frame) when every member gives them over the
# same stages; the member config field that names each output's stages (a model type without it: the same
# count K suffices).
STAGE_OUTPUTS = {"stage_probs": "sparse_subtask_names", "stage_probs_dense": "dense_subtask_names"}


def member_config_dict(config: RewardKitConfig) -> dict[str, Any]:
    """A member's config as its own config.json holds it: {"type": ..., every field}."""
    return draccus.encode(config, RewardModelConfig)


def member_config(fields: dict[str, Any], device: str, where: str) -> RewardKitConfig:
    """Parse one member's config dict (as `member_config_dict` wrote it) on `device`; `where` names the
    member in errors (the ensemble's config.json and the member's position)."""
    import_model_modules()
    model_type = fields.get("type")
    if model_type not in RewardModelConfig.get_known_choices():
        raise CheckpointError(f"{where} has model type {model_type!r}, which is not a known reward model")
    try:
        config = draccus.decode(RewardModelConfig, {**fields, "device": device})
    except Exception as e:
        raise CheckpointError(f"cannot parse {where} as '{model_type}': {e}") from e
    if not isinstance(config, RewardKitConfig):
        raise CheckpointError(
            f"{where} is a lerobot '{model_type}' config; an ensemble holds rewardkit models"
        )
    return config


def same_stage_names(members: Sequence[Any], name: str) -> bool:
    """Whether the members' configs name the stages of `name` (a key of `STAGE_OUTPUTS`) alike: the same
    names in the same order, or no names at all (a model type that does not name them)."""
    names = [getattr(getattr(m, "config", None), STAGE_OUTPUTS[name], None) for m in members]
    return all(n == names[0] for n in names)


def check_same_inputs(models: Sequence[Any], names: Sequence[str]) -> ModelInputs:
    """The members' common `required_inputs()`, or a `RewardkitError` naming the first member (`names[k]`)
    that reads other cameras, another encoder, or the state where the first does not (or the reverse)."""
    first = models[0].required_inputs()
    for model, name in zip(models[1:], names[1:], strict=True):
        inputs = model.required_inputs()
        differences = []
        if sorted(inputs.cameras) != sorted(first.cameras):
            differences.append(f"cameras {inputs.cameras} (not {first.cameras})")
        if inputs.encoder != first.encoder:
            differences.append(f"encoder {inputs.encoder!r} (not {first.encoder!r})")
        if inputs.state != first.state:
            differences.append(
                f"{'' if inputs.state else 'no '}observation.state (the first does the opposite)"
            )
        if differences:
            raise RewardkitError(
                f"{name} reads {', '.join(differences)} than {names[0]}: the members of an ensemble must "
                "read the same inputs (train them on the same cameras, encoder and state)"
            )
    return first


class EnsembleRewardModel(RewardKitModel):
    """K reward models of one type, labelled together: mean progress and its spread (module docstring).

    `members` is an `nn.ModuleList`, so the state dict holds member k's weights under `members.<k>.`.
    """

    config_class: ClassVar[type[EnsembleConfig]] = EnsembleConfig
    name: ClassVar[str] = ENSEMBLE_TYPE

    def __init__(self, config: EnsembleConfig, **kwargs: Any) -> None:
        super().__init__(config)
        config.check_members()
        self.config = config
        configs = [
            member_config(fields, config.device, f"the ensemble config's member {k}")
            for k, fields in enumerate(config.members)
        ]
        self.members = nn.ModuleList(model_class_for(c)(c) for c in configs)
        self._inputs = check_same_inputs(self.members, [f"member {k}" for k in range(len(self.members))])

    @classmethod
    def from_members(
        cls, models: Sequence[RewardKitModel], names: Sequence[str] | None = None, device: str | None = None
    ) -> EnsembleRewardModel:
        """An ensemble of `models` (at least two rewardkit models of one type reading the same inputs), with
        copies of their weights, in eval mode on `device` (default: the first member's config's device);
        `names` name the models in errors (default "member k")."""
        names = list(names) if names is not None else [f"member {k}" for k in range(len(models))]
        if len(models) < 2:
            raise RewardkitError(f"an ensemble needs at least 2 models, got {len(models)}: {names}")
        for model, name in zip(models, names, strict=True):
            if not isinstance(model, RewardKitModel):
                raise RewardkitError(
                    f"{name} is a {type(model).__name__}, not a rewardkit reward model; an ensemble combines "
                    "rewardkit models (SARM, the success classifier, ...)"
                )
            if model.config.type == ENSEMBLE_TYPE:
                raise RewardkitError(
                    f"{name} is an ensemble already; combine its members' checkpoints instead"
                )
            if model.config.type != models[0].config.type:
                raise RewardkitError(
                    f"{name} is a '{model.config.type}' model, {names[0]} a '{models[0].config.type}': the "
                    "members of an ensemble are of one model type"
                )
        check_same_inputs(models, names)
        device = device or models[0].config.device
        ensemble = cls(EnsembleConfig(members=[member_config_dict(m.config) for m in models], device=device))
        for member, model in zip(ensemble.members, models, strict=True):
            member.load_state_dict(model.state_dict())
        return ensemble.to(ensemble.config.device).eval()

    # ---- the reward-model protocol ---------------------------------------------------------------
    def required_inputs(self) -> ModelInputs:
        """The members' inputs (identical: checked when the ensemble is built)."""
        return ModelInputs(
            cameras=list(self._inputs.cameras), encoder=self._inputs.encoder, state=self._inputs.state
        )

    def prepare_for_dataset(self, dataset: Any) -> None:
        for member in self.members:
            member.prepare_for_dataset(dataset)

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Every member's `label_episode` on the same inputs, combined per frame.

        Returns "progress" (F,) the members' mean, "progress_std" (F,) their population standard deviation
        (ddof=0), "progress_dense" / "success_prob" (F,) the members' mean when every member gives them,
        and "stage_probs" / "stage_probs_dense" (F, K) the members' mean, renormalised per frame, when every
        member gives them over the same K stages (same names); F = T, or len(inputs.frame_indices) when given.
        """
        frames = None if inputs.frame_indices is None else np.asarray(inputs.frame_indices)
        outputs = [self._member_outputs(member, inputs, frames) for member in self.members]
        progress = np.stack([o["progress"] for o in outputs])  # (K, F)
        labels: FrameOutputs = {
            "progress": progress.mean(0).astype(np.float32),
            "progress_std": progress.std(0).astype(np.float32),
        }
        for name in AVERAGED_OUTPUTS:
            if all(name in o for o in outputs):
                labels[name] = np.stack([o[name] for o in outputs]).mean(0).astype(np.float32)
        for name in STAGE_OUTPUTS:
            if self._same_stages(name, outputs):
                mean = np.stack([o[name] for o in outputs]).mean(0)  # (F, K)
                labels[name] = (mean / mean.sum(1, keepdims=True)).astype(np.float32)
        return labels

    def _same_stages(self, name: str, outputs: Sequence[dict[str, np.ndarray]]) -> bool:
        """Whether every member gave `name` (a stage output) over the same stages: the same count K and,
        where the members' configs name the stages, the same names in the same order (averaging the
        probabilities of different stages would mean nothing)."""
        if not all(name in o and o[name].ndim == 2 for o in outputs):
            return False
        if len({o[name].shape[1] for o in outputs}) > 1:
            return False
        return same_stage_names(self.members, name)

    @staticmethod
    def _member_outputs(
        member: Any, inputs: EpisodeInputs, frames: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """One member's per-frame outputs as float64 arrays ((F,), stage outputs (F, K)) at the requested
        frames (a member may return every frame although it was given `frame_indices`: those are sampled at
        the frames)."""
        raw = member.label_episode(inputs)
        outputs = {}
        for name in ("progress", *AVERAGED_OUTPUTS, *STAGE_OUTPUTS):
            if name not in raw:
                continue
            value = raw[name]
            value = np.asarray(
                value.detach().float().cpu() if isinstance(value, Tensor) else value, np.float64
            )
            if frames is not None and len(value) == inputs.length and len(frames) != inputs.length:
                value = value[frames]
            outputs[name] = value
        return outputs

    @torch.no_grad()
    def member_progress(self, batch: dict[str, Tensor]) -> Tensor:
        """Every member's progress, (K, B); the batch is what each member reads (see its model)."""
        return torch.stack([member.compute_reward(batch) for member in self.members])

    def predict_progress(self, batch: dict[str, Tensor]) -> Tensor:
        """The members' mean progress, (B,)."""
        return self.member_progress(batch).mean(0)

    def predict_progress_std(self, batch: dict[str, Tensor]) -> Tensor:
        """The members' spread (population standard deviation) of progress, (B,)."""
        return self.member_progress(batch).std(0, correction=0)

    def online(self, **kwargs: Any) -> EnsembleOnline:
        """Every member's online adapter stepped together (`online_ensemble.py`); `kwargs` go to each
        member's `online()` (e.g. a SARM's task text); a frozen encoder is built once and shared."""
        from rewardkit.models.ensemble.online_ensemble import EnsembleOnline

        return EnsembleOnline(self, **kwargs)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise RewardkitError(
            "an ensemble is not trained as one model: train each member (`rewardkit train ... --seed=K`), "
            "then combine the checkpoints with `rewardkit ensemble`"
        )
