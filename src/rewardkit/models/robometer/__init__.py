"""lerobot's Robometer (a Qwen3-VL reward model) as a rewardkit model (registered as `rewardkit_robometer`).

`rewardkit.load("robometer[:<hub id or folder>]", **options)` (default lerobot/Robometer-4B) and
`rewardkit.load(<folder>)` of a lerobot "robometer" checkpoint both give a `RewardkitRobometerRewardModel`.
"""

from rewardkit.models.base import register_loader, register_named_model

from .configuration_robometer import RewardkitRobometerConfig
from .modeling_robometer import RewardkitRobometerRewardModel, build_named_robometer, load_robometer

register_named_model("robometer", build_named_robometer)
register_loader("robometer", load_robometer)

__all__ = ["RewardkitRobometerConfig", "RewardkitRobometerRewardModel", "load_robometer"]
