"""RewardWrapper on a tiny fake gymnasium env, and on a metaworld env when the sim extra is installed."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

from rewardkit.online import RewardMonitor, RewardWrapper


class SlideEnv(gym.Env):
    """A square slides right by `speed` per step; the observation is a frame and the position."""

    metadata = {"render_modes": []}

    def __init__(self, speed: float = 0.1, size: int = 16):
        self.speed, self.size = speed, size
        self.observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                "agent_pos": gym.spaces.Box(-1, 2, (2,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self):
        frame = np.zeros((self.size, self.size, 3), np.uint8)
        x = int(min(self.position, 1.0) * (self.size - 2))
        frame[7:9, x : x + 2] = 255
        return {"pixels": frame, "agent_pos": np.array([self.position, 0.0], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0.0
        return self._obs(), {"start": True}

    def step(self, action):
        self.position += self.speed
        return self._obs(), -1.0, False, self.position > 3, {}


def to_model(obs):
    return {"observation.images.top": obs["pixels"], "observation.state": obs["agent_pos"]}


def progress_model(observation):
    return float(np.clip(observation["observation.state"][0], 0, 1))


def test_wrapper_adds_the_reward_to_info_and_keeps_the_env_reward():
    env = RewardWrapper(SlideEnv(), RewardMonitor(progress_model, fps=10), obs_to_model=to_model)
    _, info = env.reset(seed=0)
    assert info["start"] and info["reward_model"]["progress"] == 0.0 and info["reward_model"]["step"] == 0
    _, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert reward == -1.0 and info["env_reward"] == -1.0 and not terminated
    assert info["reward_model"]["progress"] == pytest.approx(0.1) and info["reward_model"][
        "reward"
    ] == pytest.approx(0.1)


def test_replace_reward_and_terminate_on_complete():
    monitor = RewardMonitor(progress_model, fps=10, complete_threshold=0.5, hold_seconds=0.2)
    env = RewardWrapper(
        SlideEnv(), monitor, obs_to_model=to_model, replace_reward=True, terminate_on_complete=True
    )
    env.reset()
    rewards, terminated, steps = [], False, 0
    while not terminated:
        _, reward, terminated, _, info = env.step(np.zeros(1))
        rewards.append(reward)
        steps += 1
    # armed at progress 0.5 (step 5), held 0.2 s: completes and terminates at step 7
    assert steps == 7 and info["reward_model"]["completed"]
    np.testing.assert_allclose(rewards, np.arange(1, 8) / 10, atol=1e-6)
    # a new episode starts clean
    _, info = env.reset()
    assert not info["reward_model"]["done"]


def test_delta_and_success_reward_modes():
    env = RewardWrapper(
        SlideEnv(speed=0.2), RewardMonitor(progress_model, fps=10, hold_seconds=0), obs_to_model=to_model,
        replace_reward=True, reward_mode="delta",
    )  # fmt: skip
    env.reset()
    deltas = [env.step(np.zeros(1))[1] for _ in range(8)]
    assert sum(deltas) == pytest.approx(1.0)  # potential-based: telescopes to final - initial progress
    env = RewardWrapper(
        SlideEnv(speed=0.5), RewardMonitor(progress_model, fps=10, hold_seconds=0), obs_to_model=to_model,
        replace_reward=True, reward_mode="success",
    )  # fmt: skip
    env.reset()
    assert [env.step(np.zeros(1))[1] for _ in range(3)] == [0.0, 1.0, 1.0]


def test_wrapper_errors():
    with pytest.raises(ValueError, match="reward_mode"):
        RewardWrapper(SlideEnv(), RewardMonitor(progress_model), reward_mode="sparse")
    env = RewardWrapper(gym.make("CartPole-v1"), RewardMonitor(progress_model))
    with pytest.raises(ValueError, match="obs_to_model"):
        env.reset(seed=0)


def test_wrapper_with_a_classifier_on_a_metaworld_env():
    os.environ.setdefault("MUJOCO_GL", "egl")
    metaworld = pytest.importorskip(
        "metaworld", reason="metaworld is not installed (pip install rewardkit[sim])"
    )
    mujoco = pytest.importorskip("mujoco", reason="mujoco is not installed (pip install rewardkit[sim])")
    import torch

    from rewardkit.models.classifier import SuccessClassifierConfig, SuccessClassifierRewardModel

    task = "reach-v3"
    benchmark = metaworld.MT1(task, seed=0)
    base = benchmark.train_classes[task]()
    base.set_task(benchmark.train_tasks[0])
    try:
        renderer = mujoco.Renderer(base.model, 32, 32)
    except Exception as e:  # no offscreen GL on this machine
        base.close()
        pytest.skip(
            f"mujoco cannot render offscreen here ({type(e).__name__}: {e}); set MUJOCO_GL=egl or osmesa"
        )

    def obs_to_model(obs):
        renderer.update_scene(base.data, camera="corner")
        return {
            "observation.images.top": renderer.render().copy(),
            "observation.state": obs[:4].astype(np.float32),
        }

    torch.manual_seed(0)
    model = SuccessClassifierRewardModel(
        SuccessClassifierConfig(
            cameras=["observation.images.top"], backbone="finetune", cnn="convnet", image_size=32, hidden_dim=16,
            use_state=True, state_dim=4, device="cpu",
        )
    ).eval()  # fmt: skip
    monitor = RewardMonitor(model, fps=80, complete_threshold=0.0, release_threshold=0.0, hold_seconds=3 / 80)
    env = RewardWrapper(base, monitor, obs_to_model=obs_to_model, terminate_on_complete=True)
    try:
        _, info = env.reset(seed=0)
        assert 0.0 <= info["reward_model"]["success_prob"] <= 1.0
        terminated, steps = False, 0
        while not terminated and steps < 10:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            steps += 1
            assert reward == info["env_reward"]  # the env's reward is kept
            assert 0.0 <= info["reward_model"]["reward"] <= 1.0
        assert terminated and steps == 3  # completion held for 3 sim steps, then the episode ends
    finally:
        renderer.close()
        env.close()


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_shaped_reward_is_env_reward_plus_gamma_phi_next_minus_phi(gamma):
    env = RewardWrapper(
        SlideEnv(speed=0.15), RewardMonitor(progress_model, fps=10), obs_to_model=to_model,
        reward_mode="shaped", gamma=gamma,
    )  # fmt: skip
    _, info = env.reset(seed=0)
    phi = info["reward_model"]["progress"]
    for _ in range(9):  # past progress 1: Phi saturates, the term becomes (gamma - 1) * 1
        _, reward, _, _, info = env.step(np.zeros(1))
        phi_next = info["reward_model"]["progress"]
        assert reward == pytest.approx(info["env_reward"] + gamma * phi_next - phi)
        assert info["reward_model"]["reward"] == pytest.approx(gamma * phi_next - phi)
        phi = phi_next


def test_combine_add_and_replace_and_bad_options():
    add = RewardWrapper(
        SlideEnv(), RewardMonitor(progress_model, fps=10), obs_to_model=to_model, combine="add"
    )
    add.reset(seed=0)
    _, reward, _, _, info = add.step(np.zeros(1))
    assert reward == pytest.approx(-1.0 + 0.1) and info["env_reward"] == -1.0
    shaped_only = RewardWrapper(
        SlideEnv(), RewardMonitor(progress_model, fps=10), obs_to_model=to_model, reward_mode="shaped",
        gamma=0.5, combine="replace",
    )  # fmt: skip
    shaped_only.reset(seed=0)
    assert shaped_only.step(np.zeros(1))[1] == pytest.approx(0.5 * 0.1 - 0.0)
    from rewardkit.errors import RewardkitError

    with pytest.raises(RewardkitError, match="gamma"):
        RewardWrapper(SlideEnv(), RewardMonitor(progress_model), reward_mode="shaped", gamma=1.5)
    with pytest.raises(RewardkitError, match="combine"):
        RewardWrapper(SlideEnv(), RewardMonitor(progress_model), combine="multiply")


class EndingSlideEnv(SlideEnv):
    """SlideEnv that terminates (the task's own end) once the square passes `end`."""

    def __init__(self, end: float = 0.45, **kwargs):
        super().__init__(**kwargs)
        self.end = end

    def step(self, action):
        observation, reward, _, truncated, info = super().step(action)
        return observation, reward, self.position > self.end, truncated, info


@pytest.mark.parametrize("speed", [0.1, 0.25])
def test_shaped_reward_has_no_potential_at_a_terminal_state(speed):
    # Phi(terminal) = 0: the shaping terms of an episode sum to -Phi(s0) however it goes (policy invariance)
    env = RewardWrapper(
        EndingSlideEnv(speed=speed), RewardMonitor(progress_model, fps=10), obs_to_model=to_model,
        reward_mode="shaped", gamma=1.0, combine="replace",
    )  # fmt: skip
    _, info = env.reset(seed=0)
    phi, rewards, terminated = info["reward_model"]["progress"], [], False
    while not terminated:
        _, reward, terminated, _, info = env.step(np.zeros(1))
        rewards.append(reward)
    assert info["reward_model"]["progress"] > 0.4  # it ended in a state of high progress ...
    assert rewards[-1] == pytest.approx(-(info["reward_model"]["progress"] - speed))  # ... worth 0 there
    assert sum(rewards) == pytest.approx(-phi)
    # a truncation is not terminal: the potential is kept (the episode could have gone on)
    truncating = RewardWrapper(
        SlideEnv(speed=2.0), RewardMonitor(progress_model, fps=10), obs_to_model=to_model,
        reward_mode="shaped", gamma=1.0, combine="replace",
    )  # fmt: skip
    truncating.reset(seed=0)
    truncating.step(np.zeros(1))
    _, reward, terminated, truncated, _ = truncating.step(np.zeros(1))
    assert truncated and not terminated and reward == pytest.approx(1.0 - 1.0)
