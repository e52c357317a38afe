"""The HIL-SERL adapter called by lerobot's own reward-classifier step and processor pipeline."""

from __future__ import annotations

import numpy as np
import torch
from lerobot.processor import (
    DataProcessorPipeline,
    RewardClassifierProcessorStep,
    TransitionKey,
    create_transition,
    identity_transition,
)

from rewardkit.online import RewardMonitor
from rewardkit.online.hil_serl import HILSerlRewardClassifier, RewardkitRewardStep, install_reward_model

CAMERA = "observation.images.front"


def brightness(observation):
    """Progress = the image's mean brightness (images arrive as lerobot's (1, 3, H, W) floats)."""
    return float(torch.as_tensor(observation[CAMERA]).float().mean())


def _transition(level: float):
    image = torch.full((1, 3, 8, 8), level)
    return create_transition(observation={CAMERA: image, "observation.state": torch.zeros(1, 2)}, reward=0.0)


def test_lerobot_reward_step_calls_the_adapter_and_ends_the_episode_on_completion():
    monitor = RewardMonitor(
        brightness, fps=10, complete_threshold=0.8, release_threshold=0.8, hold_seconds=0.1
    )
    step = RewardClassifierProcessorStep(success_reward=5.0, terminate_on_success=True)
    step.reward_classifier = HILSerlRewardClassifier(monitor)
    rewards, dones = [], []
    for level in (0.2, 0.5, 0.9, 0.9, 0.9):
        out = step(_transition(level))
        rewards.append(out[TransitionKey.REWARD])
        dones.append(out[TransitionKey.DONE])
    # 0.9 at steps 2 and 3: held 0.1 s at step 3, where completion fires
    assert rewards == [0.0, 0.0, 0.0, 5.0, 5.0] and dones == [False, False, False, True, True]
    assert "reward_classifier_frequency" in out[TransitionKey.INFO]


def test_installed_in_a_lerobot_pipeline_reset_starts_a_new_episode():
    pipeline = DataProcessorPipeline(
        steps=[RewardClassifierProcessorStep(success_reward=2.0, terminate_on_success=False)],
        to_transition=identity_transition,
        to_output=identity_transition,
    )
    monitor = RewardMonitor(brightness, fps=10, complete_threshold=0.8, hold_seconds=0.0)
    step = install_reward_model(pipeline, monitor)
    assert isinstance(pipeline.steps[0], RewardkitRewardStep) and step.success_reward == 2.0
    assert pipeline(_transition(0.9))[TransitionKey.REWARD] == 2.0
    assert pipeline(_transition(0.1))[TransitionKey.REWARD] == 2.0  # done is a level within an episode
    assert pipeline(_transition(0.1))[TransitionKey.DONE] is False  # terminate_on_success kept off
    pipeline.reset()
    assert monitor.step_index == 0
    assert pipeline(_transition(0.1))[TransitionKey.REWARD] == 0.0
    np.testing.assert_allclose(step.reward_classifier.last.progress, 0.1, rtol=1e-6)
