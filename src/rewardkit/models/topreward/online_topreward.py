"""TOPReward one observation at a time (`CachedTOPRewardRewardModel.online(every=k)`).

The video cache grows as the episode does: every second step the completed frame pair (its "<t seconds>"
and vision tokens) is appended to the key/value cache. Every `every`-th step (and at the first) the prompt
is scored from the cache, as in labelling: an even step count reuses the cache as it is, an odd one brings
its own padded pair (t, t) in the suffix. Cost per step: on average half a pair (a 2-frame vision encode
and h*w/1024 + ~6 tokens through the VLM, at 16 px patches merged 2x2) plus, on a scored step, one prompt
suffix (~30 tokens, and one more pair on odd steps) attending to the whole cache; nothing is recomputed.
Between scored steps the last score is held.

Progress is the causal "running" min-max over the scored steps (so online equals labelling with
normalize='running'); the raw log-probability is in `extras["log_prob"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rewardkit.errors import RewardkitError
from rewardkit.models.online import StepOutput, frame_to_uint8_hwc, require


class TOPRewardOnline:
    """TOPReward's progress one observation at a time.

    Args:
        model: a `CachedTOPRewardRewardModel` with `config.normalize == "running"`.
        every: score the prompt every `every`-th step (the cache grows every step regardless).
    """

    def __init__(self, model: Any, every: int = 1):
        if model.config.normalize != "running":
            raise RewardkitError(
                "topreward normalises progress over the whole episode (normalize='episode'), which needs "
                "future frames: it is not causal and cannot run online. Load it with normalize='running' "
                "(e.g. --model.options='{normalize: running}') to score online"
            )
        if every < 1:
            raise RewardkitError(f"topreward online: every must be >= 1, got {every}")
        self.model = model
        self.every = every
        self.camera = model.config.camera
        self.reset()

    def reset(self) -> None:
        self.prefix = None
        self.task: str | None = None
        self.size: tuple[int, int] | None = None
        self.pending: list[torch.Tensor] = []  # the frame of an incomplete pair
        self.steps = 0
        self.low = self.high = None
        self.last = StepOutput(progress=0.0)

    def encode(self, observation: Mapping[str, Any]) -> dict[str, Any]:
        """The new frame (H, W, 3) uint8 and the task text; refused before the history is touched."""
        frame = frame_to_uint8_hwc(require(observation, self.camera, "TOPReward"), self.camera)
        task = require(observation, "task", "TOPReward")
        if not isinstance(task, str) or not task:
            raise RewardkitError(f"TOPReward needs the task text in observation['task'], got {task!r}")
        if self.size is not None and frame.shape[:2] != self.first_shape:
            raise RewardkitError(
                f"TOPReward: camera '{self.camera}' frame is {frame.shape[:2]}, the episode started with "
                f"{self.first_shape}"
            )
        return {"frame": frame, "task": task}

    @torch.no_grad()
    def step_features(self, features: dict[str, Any]) -> StepOutput:
        model = self.model
        frame, task = features["frame"], features["task"]
        if self.prefix is None:
            self._start(frame, task)
        elif task != self.task:
            raise RewardkitError(f"TOPReward: the task changed mid-episode ({self.task!r} -> {task!r})")
        video = model.resize_frames(frame[None], self.size)
        index = self.steps
        self.steps += 1
        self.pending.append(video[0])
        if len(self.pending) == 2:  # a completed pair joins the cache
            patches, grid = model.pixel_values([torch.stack(self.pending)])
            ids = model._pair_ids(index - 1, index, self.per_pair)
            model.extend_prefix(self.prefix, ids, patches, grid)
            self.pending = []
        if index % self.every != 0:
            return self.last
        pairs = len(self.prefix.cuts) - 1
        if self.pending:  # odd length: its own padded pair in the suffix
            patches, _ = model.pixel_values([self.pending[0][None]])
            suffix = (pairs, model._pair_ids(index, index, self.per_pair) + self.tail_ids, patches)
        else:
            suffix = (pairs, self.tail_ids, None)
        log_prob = float(model.score_suffixes(self.prefix, [suffix])[0])
        self.low = log_prob if self.low is None else min(self.low, log_prob)
        self.high = log_prob if self.high is None else max(self.high, log_prob)
        span = self.high - self.low
        progress = (log_prob - self.low) / span if span > 0 else 1.0
        self.last = StepOutput(progress=float(np.clip(progress, 0.0, 1.0)), extras={"log_prob": log_prob})
        return self.last

    def _start(self, frame: np.ndarray, task: str) -> None:
        model = self.model
        self.first_shape = frame.shape[:2]
        self.size = model.frame_size(*frame.shape[:2])
        self.task = task
        header, tail = model.prompt_pieces(task)
        self.tail_ids = model._tokenizer(tail, add_special_tokens=False)["input_ids"]
        patch = model._patch
        grid = torch.tensor([[1, self.size[0] // patch, self.size[1] // patch]])
        self.per_pair = int(grid[0, 1] * grid[0, 2]) // model._merge**2
        self.prefix = model.start_prefix(model._tokenizer(header)["input_ids"], grid)
