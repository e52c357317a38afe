"""SARM (Stage-Aware Reward Modeling) on cached frozen features; also opens lerobot SARM checkpoints."""

from rewardkit.models.base import register_loader
from rewardkit.models.sarm.configuration_sarm import StageAwareConfig
from rewardkit.models.sarm.modeling_sarm import StageAwareRewardModel, load_lerobot_sarm, window_indices

register_loader("sarm", load_lerobot_sarm)

__all__ = ["StageAwareConfig", "StageAwareRewardModel", "load_lerobot_sarm", "window_indices"]
