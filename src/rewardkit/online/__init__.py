"""Online reward: `RewardMonitor` (one observation at a time, task-complete and stall signals) and the
gymnasium `RewardWrapper`."""

from rewardkit.online.adapters import (
    FunctionOnline,
    InvalidObservation,
    OnlineModel,
    StepOutput,
    make_online_model,
    register_online_adapter,
)
from rewardkit.online.monitor import MonitorOutput, RewardMonitor

__all__ = [
    "FunctionOnline",
    "InvalidObservation",
    "MonitorOutput",
    "OnlineModel",
    "RewardMonitor",
    "RewardWrapper",
    "StepOutput",
    "make_online_model",
    "register_online_adapter",
]


def __getattr__(name: str):
    # gymnasium is imported only when the wrapper is used.
    if name == "RewardWrapper":
        from rewardkit.online.gym_wrapper import RewardWrapper

        return RewardWrapper
    raise AttributeError(name)
