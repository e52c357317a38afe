"""Success classifier reward model (registered as `rewardkit_classifier`)."""

from .configuration_classifier import SuccessClassifierConfig
from .modeling_classifier import SuccessClassifierRewardModel

__all__ = ["SuccessClassifierConfig", "SuccessClassifierRewardModel"]
