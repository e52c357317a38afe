"""The generic reward-model trainer (any model with `forward(batch) -> (loss, logs)`)."""

from rewardkit.training.trainer import Trainer, TrainingConfig, TrainResult, split_episodes

__all__ = ["Trainer", "TrainingConfig", "TrainResult", "split_episodes"]
