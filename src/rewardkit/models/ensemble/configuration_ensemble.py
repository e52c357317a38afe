"""Configuration of the reward-model ensemble (`rewardkit_ensemble`, built by `rewardkit ensemble`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.rewards import RewardModelConfig

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardKitConfig

ENSEMBLE_TYPE = "rewardkit_ensemble"


@RewardModelConfig.register_subclass(ENSEMBLE_TYPE)
@dataclass
class EnsembleConfig(RewardKitConfig):
    """K reward models of one type (typically one SARM trained with K seeds) run as one model: the
    progress is the members' mean, `progress_std` their spread.

    Args:
        members: each member's full config, as its own config.json holds it (a dict with its "type" and
            every field). At least two, all of one rewardkit model type; the weights of member k are
            stored in the ensemble's model.safetensors under `members.<k>.`.
    """

    members: list[dict[str, Any]] = field(default_factory=list)

    def check_members(self) -> None:
        """Raise a `RewardkitError` unless `members` lists at least two configs of one rewardkit model type
        (the model checks this when it is built; a default `EnsembleConfig()` stays constructible, as
        lerobot's registry and help text need)."""
        if len(self.members) < 2:
            raise RewardkitError(
                f"an ensemble needs at least 2 members, its config lists {len(self.members)}"
            )
        for k, member in enumerate(self.members):
            if not isinstance(member, dict) or "type" not in member:
                raise RewardkitError(
                    f"ensemble member {k} is not a model config (a dict with a 'type' field): {member!r:.80}"
                )
        types = sorted({member["type"] for member in self.members})
        if len(types) > 1:
            raise RewardkitError(f"ensemble members must be of one model type, got {types}")
        if types[0] == ENSEMBLE_TYPE:
            raise RewardkitError("an ensemble's members cannot be ensembles themselves; list their members")
