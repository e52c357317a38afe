"""A gymnasium wrapper that runs a `RewardMonitor` on every observation of an env.

The model's output goes into `info["reward_model"]` (a dict of the `MonitorOutput` fields) at reset and
at every step; by option it replaces the env's reward (the env's own reward stays in
`info["env_reward"]`), is added to it, or shapes it (potential-based shaping, Ng et al. 1999: r + γΦ(s') - Φ(s)
with Φ = progress, and Φ = 0 at a terminal state, which keeps the env's optimal policies), and ends the
episode (`terminated=True`) when the monitor detects task completion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import gymnasium as gym

from rewardkit.errors import RewardkitError
from rewardkit.online.monitor import MonitorOutput, RewardMonitor

REWARD_MODES = ("progress", "delta", "success", "shaped")
COMBINES = ("env", "replace", "add")
INFO_KEY = "reward_model"


class RewardWrapper(gym.Wrapper):
    """Add a learned reward to any gymnasium env whose observations carry (or can be turned into) the
    model's inputs.

    Args:
        env: the env to wrap.
        monitor: the `RewardMonitor` around the reward model (reset with the env).
        obs_to_model: env observation -> model observation dict (lerobot naming:
            "observation.images.<cam>", "observation.state", ...); None: the env's observation already is
            one. Close over the env to add rendered frames (`lambda obs: {"observation.images.top":
            env.render(), ...}`).
        replace_reward: return the model's reward instead of the env's (same as combine="replace").
        terminate_on_complete: set `terminated=True` once task completion has fired.
        reward_mode: the model reward: "progress" (the monitor's signal: progress, or success probability
            for a classifier), "delta" (progress increase since the previous step: a potential-based
            shaping term with γ = 1), "success" (1.0 once task completion has fired, else 0.0) or "shaped"
            (the shaping term γ·Φ(s') - Φ(s), Φ = progress; returned added to the env's reward by default).
            On a step that ends the episode (`terminated`, the env's or completion's; not a truncation,
            where the episode could go on) Φ(s') = 0: an absorbing state has no potential, so the shaping
            terms of an episode sum to -Φ(s0) whatever the policy does, and the optimal policies stay the
            env's (with Φ(s') kept, ending in a high-progress state would pay by itself).
        gamma: γ of the shaped reward (use the RL algorithm's discount).
        combine: what `step` returns: "env" (the env's reward; the model's in info), "replace" (the
            model's) or "add" (env + model). Default: "replace" with `replace_reward`, "add" for
            reward_mode="shaped", else "env".
    """

    def __init__(
        self,
        env: gym.Env,
        monitor: RewardMonitor,
        obs_to_model: Callable[[Any], Mapping[str, Any]] | None = None,
        replace_reward: bool = False,
        terminate_on_complete: bool = False,
        reward_mode: str = "progress",
        gamma: float = 0.99,
        combine: str | None = None,
    ):
        super().__init__(env)
        if reward_mode not in REWARD_MODES:
            raise RewardkitError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if combine is None:
            combine = "replace" if replace_reward else "add" if reward_mode == "shaped" else "env"
        if combine not in COMBINES or (replace_reward and combine != "replace"):
            raise RewardkitError(
                f"combine must be one of {COMBINES} (replace_reward=True means 'replace'), got {combine!r}"
            )
        if not 0.0 <= gamma <= 1.0:
            raise RewardkitError(f"gamma must lie in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.combine = combine
        self.monitor = monitor
        self.obs_to_model = obs_to_model
        self.replace_reward = replace_reward
        self.terminate_on_complete = terminate_on_complete
        self.reward_mode = reward_mode
        self._previous_progress = 0.0

    def _observe(self, observation: Any) -> MonitorOutput:
        model_observation = observation if self.obs_to_model is None else self.obs_to_model(observation)
        if not isinstance(model_observation, Mapping):
            raise RewardkitError(
                f"the monitor needs a dict observation, got {type(model_observation).__name__}; "
                "pass obs_to_model to build one from the env's observation"
            )
        return self.monitor.step(model_observation)

    def model_reward(self, output: MonitorOutput, terminated: bool = False) -> float:
        """The reward this wrapper derives from one monitor output (see `reward_mode`); `terminated`: the
        step ends the episode (shaped: the next state's potential is 0)."""
        if self.reward_mode == "delta":
            return output.progress - self._previous_progress
        if self.reward_mode == "shaped":
            return (0.0 if terminated else self.gamma * output.progress) - self._previous_progress
        if self.reward_mode == "success":
            return float(output.done)
        return output.signal

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self.monitor.reset()
        output = self._observe(observation)
        self._previous_progress = output.progress
        info = dict(info)
        info[INFO_KEY] = asdict(output)
        return observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, env_reward, terminated, truncated, info = self.env.step(action)
        output = self._observe(observation)
        # `done`, not the one-step `completed` event: completion detected at reset also ends the episode.
        if self.terminate_on_complete and output.done:
            terminated = True
        reward = self.model_reward(output, terminated=bool(terminated))
        self._previous_progress = output.progress
        info = dict(info)
        info[INFO_KEY] = {**asdict(output), "reward": reward}
        info["env_reward"] = env_reward
        returned = {"env": env_reward, "replace": reward, "add": float(env_reward) + reward}[self.combine]
        return observation, returned, terminated, truncated, info
