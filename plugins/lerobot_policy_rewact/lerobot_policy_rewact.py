"""lerobot plugin: importing it registers rewardkit's RewACT policy (`--policy.type=rewact`).

lerobot imports this module by its distribution name at start-up (`register_third_party_plugins`), and
resolves the policy and its processors from the config class's module by naming convention:
`rewardkit.models.rewact.{configuration,modeling,processor}_rewact`.
"""

from rewardkit.models.rewact import RewACTConfig, RewACTPolicy

__all__ = ["RewACTConfig", "RewACTPolicy"]
