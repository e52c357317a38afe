"""A rewardkit model where lerobot's HIL-SERL expects its reward classifier.

lerobot's RL env pipeline (`lerobot.rl.gym_manipulator`) runs a `RewardClassifierProcessorStep`: each step it
calls `reward_classifier.predict_reward(images, threshold=success_threshold)` with the observation's image
entries and, when the answer is 1, sets the transition's reward to `success_reward` (and `done` with
`terminate_on_success`). `HILSerlRewardClassifier` answers that call from a `RewardMonitor`: 1.0 once the
monitor's completion rule has fired (its calibrated threshold and hold, see `rewardkit calibrate`), else
0.0. lerobot's `threshold` argument is ignored: the monitor's rule is the one measured on held-out episodes.

`RewardkitRewardStep` is lerobot's step with reset: a pipeline `reset()` (lerobot calls it at every episode
start) starts the monitor's new episode. Put it in a pipeline with `install_reward_model(pipeline, monitor)`
(replaces the pipeline's reward-classifier step, keeping its settings) or build it from a checkpoint
folder, registered as "rewardkit_reward_classifier".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lerobot.processor import ProcessorStepRegistry, RewardClassifierProcessorStep

from rewardkit.errors import RewardkitError
from rewardkit.online.monitor import RewardMonitor


class HILSerlRewardClassifier:
    """The interface lerobot's reward-classifier step calls (`predict_reward`, `to`, `eval`), over a monitor.

    Args:
        monitor: the `RewardMonitor` around the rewardkit model. lerobot passes only the image entries of
            the observation, so the model must need only images.
    """

    def __init__(self, monitor: RewardMonitor):
        self.monitor = monitor
        self.last = None

    def predict_reward(self, batch: Mapping[str, Any], threshold: float = 0.5) -> torch.Tensor:
        """1.0 once task completion has fired in this episode, else 0.0 (a scalar tensor).

        `batch`: {"observation.images.<cam>": (1, 3, H, W) float in [0, 1] or (H, W, 3) uint8}.
        `threshold`: lerobot's success_threshold, ignored (the monitor's calibrated rule decides).
        """
        self.last = self.monitor.step(batch)
        return torch.tensor(1.0 if self.last.done else 0.0)

    def reset(self) -> None:
        """Start a new episode."""
        self.monitor.reset()

    def to(self, device: Any) -> HILSerlRewardClassifier:
        return self

    def eval(self) -> HILSerlRewardClassifier:
        return self


@ProcessorStepRegistry.register("rewardkit_reward_classifier")
@dataclass
class RewardkitRewardStep(RewardClassifierProcessorStep):
    """lerobot's reward-classifier step answered by a rewardkit model; `reset()` starts a new episode.

    `pretrained_path`: a rewardkit checkpoint folder, loaded with `RewardMonitor.from_pretrained` (so the
    `calibration.json` beside it sets the completion rule).
    """

    def __post_init__(self) -> None:
        if self.pretrained_path is not None:
            monitor = RewardMonitor.from_pretrained(self.pretrained_path, device=self.device)
            self.reward_classifier = HILSerlRewardClassifier(monitor)

    def reset(self) -> None:
        if self.reward_classifier is not None and hasattr(self.reward_classifier, "reset"):
            self.reward_classifier.reset()


def install_reward_model(pipeline: Any, monitor: RewardMonitor) -> RewardkitRewardStep:
    """Put `monitor` where `pipeline` (lerobot's env processor) has its reward classifier.

    The pipeline's `RewardClassifierProcessorStep` is replaced by a `RewardkitRewardStep` with the same
    success_reward, terminate_on_success and device; without one, a step is appended.
    Returns the installed step.
    """
    steps = list(pipeline.steps)
    position = next((i for i, s in enumerate(steps) if isinstance(s, RewardClassifierProcessorStep)), None)
    old = steps[position] if position is not None else RewardClassifierProcessorStep()
    step = RewardkitRewardStep(
        device=old.device,
        success_threshold=old.success_threshold,
        success_reward=old.success_reward,
        terminate_on_success=old.terminate_on_success,
    )
    step.reward_classifier = HILSerlRewardClassifier(monitor)
    if position is None:
        steps.append(step)
    else:
        steps[position] = step
    try:
        pipeline.steps = steps
    except AttributeError as error:  # a frozen pipeline
        raise RewardkitError(f"cannot replace the steps of {type(pipeline).__name__}: {error}") from error
    return step
