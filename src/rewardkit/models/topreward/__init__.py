"""TOPReward (zero-shot Qwen3-VL progress, lerobot's `lerobot.rewards.topreward`) with a prefix cache:
registered as `rewardkit_topreward` and as the named model "topreward[:<vlm id or folder>]"."""

from rewardkit.models.base import register_named_model

from .configuration_topreward import CachedTOPRewardConfig
from .modeling_topreward import CachedTOPRewardRewardModel, build_topreward

register_named_model("topreward", build_topreward)

__all__ = ["CachedTOPRewardConfig", "CachedTOPRewardRewardModel", "build_topreward"]
