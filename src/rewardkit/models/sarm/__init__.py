"""SARM (Stage-Aware Reward Modeling) on cached frozen features; also opens lerobot SARM checkpoints."""

from rewardkit.models.base import register_loader
from rewardkit.models.sarm.configuration_sarm import SARMConfig
from rewardkit.models.sarm.modeling_sarm import SARMRewardModel, load_lerobot_sarm, window_indices

register_loader("sarm", load_lerobot_sarm)

# The names before the classes were named after their folder; kept for one release.
StageAwareConfig = SARMConfig
StageAwareRewardModel = SARMRewardModel

__all__ = [
    "SARMConfig",
    "SARMRewardModel",
    "StageAwareConfig",
    "StageAwareRewardModel",
    "load_lerobot_sarm",
    "window_indices",
]
