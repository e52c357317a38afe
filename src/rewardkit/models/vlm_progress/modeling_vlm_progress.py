"""Zero-shot task progress from any vision-language model behind an OpenAI-compatible API.

Two ways to ask (`VLMProgressConfig.mode`):

- "gvl" (Generative Value Learning): `num_frames` evenly spaced frames of the episode, shown in a seeded
  random order (so the model cannot read progress off the order), the task text, and a request for each
  frame's completion percentage as JSON. The answer is parsed strictly (exactly the frame numbers asked,
  numbers in [0, 100]); a malformed one is asked again with what was wrong, then reported with the episode.
  One request per episode.
- "logprob" (TOPReward's signal over a server): for each sampled frame, the frames up to it and lerobot's
  TOPReward prompt ending "The answer is: True"; the server returns the prompt's log-probabilities
  (vLLM: `prompt_logprobs`, `continue_final_message`) and the log-probability of the final "True" is the
  score, min-max normalised per episode (lerobot's `normalize_rewards`). `num_frames` requests per episode.

The frames between the sampled ones get linearly interpolated progress (as the labeller's `--stride`).
Every answer is cached on disk under `cache_dir`, keyed by a hash of (served model, mode, prompt, settings,
the frames' bytes), written atomically: a killed run resumes where it stopped and a rerun sends no request.
Labelling a dataset asks `concurrency` episodes in parallel (`prepare_for_dataset`) and logs the number of
requests, cache hits and tokens at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_text
from rewardkit.models.base import EpisodeInputs, FrameOutputs, ModelInputs, RewardKitModel
from rewardkit.openai_client import BackendError, OpenAIClient, chat_request_body, check_key_transport

from .configuration_vlm_progress import VLMProgressConfig

logger = logging.getLogger(__name__)

# Part of every cache key: changing a prompt below changes this, so old answers are not reused for it.
PROMPT_VERSION = "vlm_progress-1"

GVL_INTRODUCTION = (
    "You are an expert roboticist. A robot is doing this task: {task}\n"
    "Below are {count} frames of one video of the robot doing the task. The frames are SHUFFLED: their "
    "numbers do not follow the order in time. For each frame, estimate how far the task has progressed at "
    "that moment, as a completion percentage from 0 (not started) to 100 (completed)."
)
GVL_REQUEST = (
    "Answer with only a JSON object that maps each frame number to its completion percentage, with exactly "
    'the {count} frame numbers 1 to {count}, e.g. {{"1": 0, "2": 40, ...}}.'
)
GVL_CORRECTION = (
    "Your previous answer could not be used: {problem}. Answer again, in exactly the format asked."
)


class VLMAnswerError(RewardkitError):
    """The server's answer is not what was asked (not JSON, wrong frame numbers, out of range...)."""


# ---- pure pieces ----------------------------------------------------------------------------------
def sample_positions(length: int, num_frames: int) -> np.ndarray:
    """(n,) sorted distinct frame positions in 0..length-1, evenly spaced, first and last included
    (every frame when length <= num_frames)."""
    if length <= 0:
        raise RewardkitError(f"an episode needs at least one frame, got length {length}")
    return np.unique(np.round(np.linspace(0, length - 1, min(num_frames, length))).astype(np.int64))


def shuffled_order(count: int, seed: int) -> np.ndarray:
    """(count,) the order in which `count` time-ordered frames are shown: a permutation that depends only
    on (seed, count), so labelling and online ask the same question for the same frames."""
    return np.random.default_rng([seed, count]).permutation(count)


def gvl_parts(task: str, shown: np.ndarray) -> list[str | np.ndarray]:
    """The GVL prompt: the introduction, "Frame i:" before each frame of `shown` (n, H, W, 3), the request."""
    count = len(shown)
    parts: list[str | np.ndarray] = [GVL_INTRODUCTION.format(task=task, count=count)]
    for number, frame in enumerate(shown, start=1):
        parts += [f"Frame {number}:", frame]
    parts.append(GVL_REQUEST.format(count=count))
    return parts


def _json_payload(text: str) -> Any:
    text = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise VLMAnswerError(f"the answer is not JSON ({e.msg}): {text[:200]!r}") from None


def parse_gvl_answer(text: str, count: int) -> np.ndarray:
    """The completion percentages of a GVL answer, (count,) in [0, 1], in the order the frames were shown.

    Accepted: a JSON object with exactly the keys "1".."count" (the frame numbers), or a JSON list of exactly
    `count` numbers, optionally inside one ```json fence; every value a number in [0, 100]. Anything else is
    a `VLMAnswerError` saying what is wrong.
    """
    payload = _json_payload(text)
    if isinstance(payload, dict):
        expected = {str(number) for number in range(1, count + 1)}
        keys = {str(key).strip() for key in payload}
        if keys != expected or len(payload) != count:
            missing = sorted(expected - keys, key=int)
            extra = sorted(keys - expected)
            raise VLMAnswerError(
                f"the answer must name exactly the frames 1..{count}; missing {missing[:10]}, "
                f"unexpected {extra[:10]}"
            )
        by_key = {str(key).strip(): value for key, value in payload.items()}
        values = [by_key[str(number)] for number in range(1, count + 1)]
    elif isinstance(payload, list):
        if len(payload) != count:
            raise VLMAnswerError(f"the answer has {len(payload)} values for {count} frames")
        values = payload
    else:
        raise VLMAnswerError(f"the answer must be a JSON object or list, got {type(payload).__name__}")
    for number, value in enumerate(values, start=1):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise VLMAnswerError(f"frame {number}: {value!r} is not a number")
        if not 0.0 <= value <= 100.0:
            raise VLMAnswerError(f"frame {number}: {value} is not a percentage in [0, 100]")
    return np.asarray(values, dtype=np.float64) / 100.0


def true_log_prob(answer: dict[str, Any]) -> float:
    """The log-probability of the prompt's final token, which must be "True", from a chat or completions
    answer that carries vLLM's `prompt_logprobs` (a list, one entry per prompt token: None or
    {token_id: {"logprob", "rank", "decoded_token"}})."""
    entries = answer.get("prompt_logprobs")
    if entries is None and isinstance(answer.get("choices"), list) and answer["choices"]:
        entries = answer["choices"][0].get("prompt_logprobs")
    if not isinstance(entries, list) or not entries or not isinstance(entries[-1], dict):
        raise VLMAnswerError(
            "the answer has no prompt_logprobs: mode='logprob' needs a server that returns prompt "
            "log-probabilities (vLLM); use mode='gvl' otherwise"
        )
    for candidate in entries[-1].values():
        if isinstance(candidate, dict) and str(candidate.get("decoded_token", "")).strip() == "True":
            value = candidate.get("logprob")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return float(value)
    raise VLMAnswerError(f"the prompt's last token is not 'True' with a finite logprob: {entries[-1]!r:.200}")


def default_cache_dir() -> Path:
    """`$REWARDKIT_CACHE/vlm`, else ~/.cache/rewardkit/vlm."""
    root = os.environ.get("REWARDKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "rewardkit") / "vlm"


def minmax(values: np.ndarray) -> np.ndarray:
    """Per-episode min-max normalisation of TOPReward scores (lerobot's `normalize_rewards`)."""
    from lerobot.rewards.topreward.compute_rabc_weights import normalize_rewards

    return np.asarray(normalize_rewards(values), dtype=np.float64)


# ---- the model -------------------------------------------------------------------------------------
class VLMProgressRewardModel(RewardKitModel):
    """Zero-shot progress from a served VLM (see the module docstring). No weights: the config is the model.

    `label_episode` returns {"progress": (N,)} (and, in logprob mode, "log_prob": (N,) the interpolated
    raw scores). `usage` counts requests, cache hits and tokens since the model was built.
    """

    config_class = VLMProgressConfig
    name = "rewardkit_vlm_progress"

    def __init__(self, config: VLMProgressConfig, **kwargs: Any) -> None:
        super().__init__(config)
        self.config: VLMProgressConfig = config
        self._client: OpenAIClient | None = None
        self._client_lock = threading.Lock()
        self._camera: str | None = config.camera
        self.cache_hits = 0
        # Refused now, before any frame is decoded, rather than at the first request.
        check_key_transport(
            config.base_url, os.environ.get(config.api_key_env) or None, config.allow_insecure_http
        )

    # ---- plumbing ---------------------------------------------------------------------------------
    @property
    def client(self) -> OpenAIClient:
        """The HTTP client, built on first use (the key is read from `api_key_env` then, never stored)."""
        with self._client_lock:
            if self._client is None:
                if not self.config.served_model:
                    raise RewardkitError(
                        "vlm_progress needs the served model name: --model.vlm=NAME "
                        "(rewardkit.load('vlm_progress:NAME'))"
                    )
                self._client = OpenAIClient(
                    self.config.base_url,
                    os.environ.get(self.config.api_key_env) or None,
                    timeout_s=self.config.timeout_s,
                    max_retries=self.config.max_retries,
                    backoff_s=self.config.backoff_s,
                    allow_insecure_http=self.config.allow_insecure_http,
                )
            return self._client

    @property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir).expanduser() if self.config.cache_dir else default_cache_dir()

    def usage_summary(self) -> str:
        """ "N requests, M cache hits, P prompt + C completion tokens" since the model was built."""
        usage = self._client.usage if self._client is not None else None
        requests = usage.requests if usage else 0
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        return (
            f"{requests} requests, {self.cache_hits} cache hits, {prompt} prompt + {completion} completion "
            f"tokens ({self.config.served_model} at {self.config.base_url})"
        )

    def _cache_key(self, kind: str, text: str, frames: np.ndarray) -> str:
        header = {
            "version": PROMPT_VERSION,
            "kind": kind,
            "model": self.config.served_model,
            "prompt": text,
            "settings": [
                self.config.max_tokens,
                self.config.temperature,
                self.config.image_format.lower(),
                self.config.max_image_side,
            ],
            "frames": list(frames.shape),
        }
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode("utf-8"))
        digest.update(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
        return digest.hexdigest()

    def _cached(self, key: str) -> dict[str, Any] | None:
        path = self.cache_dir / key[:2] / f"{key}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("ignoring unreadable cached answer %s", path)
            return None
        with self._client_lock:
            self.cache_hits += 1
        return record

    def _store(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.cache_dir / key[:2] / f"{key}.json", json.dumps(record))

    def _body(self, parts: list[str | np.ndarray], **settings: Any) -> dict[str, Any]:
        return chat_request_body(
            self.config.served_model,
            parts,
            self.config.image_format.lower(),
            self.config.max_image_side,
            **settings,
        )

    def _post(self, body: dict[str, Any], context: str) -> dict[str, Any]:
        try:
            return self.client.post("chat/completions", body, context)
        except BackendError as e:
            raise BackendError(f"vlm_progress ({self.config.served_model}): {e}") from None

    # ---- asking ------------------------------------------------------------------------------------
    def score_frames(self, frames: np.ndarray, task: str, context: str = "") -> np.ndarray:
        """GVL: the completion of each of `frames` (n, H, W, 3) uint8, in time order -> (n,) in [0, 1].

        One request (or none, from the cache); a malformed answer is asked again `max_retries` times, then
        a `VLMAnswerError` naming `context` (e.g. "episode 3").
        """
        order = shuffled_order(len(frames), self.config.seed)
        shown = frames[order]
        parts = gvl_parts(task, shown)
        text = "\n".join(part for part in parts if isinstance(part, str))
        key = self._cache_key("gvl", text, shown)
        record = self._cached(key)
        if record is not None:
            values_shown = parse_gvl_answer(record["answer"], len(frames))
        else:
            settings = dict(max_tokens=self.config.max_tokens, temperature=self.config.temperature)
            problems: list[str] = []
            for _ in range(self.config.max_retries + 1):
                extra = [GVL_CORRECTION.format(problem=problems[-1])] if problems else []
                answer = self._post(self._body(parts + extra, **settings), context)
                content = _chat_text(answer)
                try:
                    values_shown = parse_gvl_answer(content, len(frames))
                except VLMAnswerError as e:
                    problems.append(str(e))
                    logger.warning("%s: malformed answer (%s)", context or "vlm_progress", e)
                    continue
                self._store(key, {"kind": "gvl", "answer": content, "usage": answer.get("usage")})
                break
            else:
                raise VLMAnswerError(
                    f"{context or 'vlm_progress'}: no usable answer from {self.config.served_model} at "
                    f"{self.config.base_url} after {len(problems)} attempts; last problem: {problems[-1]}"
                )
        values = np.empty(len(frames), dtype=np.float64)
        values[order] = values_shown
        return values

    def prefix_log_prob(self, frames: np.ndarray, task: str, context: str = "") -> float:
        """TOPReward over a server: log P("True" | frames (n, H, W, 3) uint8 in time order, task prompt)."""
        from lerobot.rewards.topreward.configuration_topreward import (
            DEFAULT_PROMPT_PREFIX,
            DEFAULT_PROMPT_SUFFIX_TEMPLATE,
        )

        text = DEFAULT_PROMPT_PREFIX + DEFAULT_PROMPT_SUFFIX_TEMPLATE.format(instruction=task)
        key = self._cache_key("logprob", text, frames)
        record = self._cached(key)
        if record is not None:
            return float(record["answer"])
        body = self._body(
            [*frames, text],
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=0,
            add_generation_prompt=False,
            continue_final_message=True,
        )
        problem = ""
        for _ in range(self.config.max_retries + 1):
            answer = self._post(body, context)
            try:
                value = true_log_prob(answer)
            except VLMAnswerError as e:
                problem = str(e)
                continue
            self._store(key, {"kind": "logprob", "answer": value, "usage": answer.get("usage")})
            return value
        raise VLMAnswerError(f"{context or 'vlm_progress'}: {self.config.served_model}: {problem}")

    def score_episode(self, frames: np.ndarray, task: str, context: str = "") -> dict[str, np.ndarray]:
        """The sampled frames' outputs: frames (n, H, W, 3) in time order -> {"progress": (n,)} (+ "log_prob")."""
        if self.config.mode == "gvl":
            return {"progress": self.score_frames(frames, task, context)}
        scores = np.array(
            [self.prefix_log_prob(frames[: k + 1], task, context) for k in range(len(frames))],
            dtype=np.float64,
        )
        return {"progress": minmax(scores), "log_prob": scores}

    # ---- the reward-model protocol -------------------------------------------------------------------
    def required_inputs(self) -> ModelInputs:
        return ModelInputs(cameras=[self._camera] if self._camera else [], encoder=None, state=False)

    def prepare_for_dataset(self, dataset: Any) -> None:
        """Pick the camera (the dataset's first when none is set) and ask for every episode of `dataset`,
        `concurrency` at a time, so `label_episode` then reads answers from the cache. Episodes that fail
        are named together in one error after the others are done (and cached: a rerun asks only those)."""
        if self._camera is None:
            if not dataset.camera_keys:
                raise RewardkitError(f"vlm_progress needs a camera; dataset {dataset.root} has none")
            self._camera = dataset.camera_keys[0]
        dataset.check_camera(self._camera)
        failures: dict[int, str] = {}
        window = 2 * self.config.concurrency  # decoded episodes waiting for the pool, at most
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="vlm_progress") as pool:
            pending: dict[int, Future] = {}
            for episode in dataset.episodes():
                positions = sample_positions(episode.length, self.config.num_frames)
                frames = dataset.read_frames_at(episode.episode_index, self._camera, positions)
                pending[episode.episode_index] = pool.submit(
                    self.score_episode, frames, episode.task, f"episode {episode.episode_index}"
                )
                if len(pending) >= window:
                    _collect(pending, failures, wait_for=1)
            _collect(pending, failures, wait_for=len(pending))
        logger.info("vlm_progress: %s", self.usage_summary())
        if failures:
            listed = "; ".join(f"episode {e}: {m}" for e, m in sorted(failures.items())[:5])
            raise RewardkitError(
                f"vlm_progress: {len(failures)} episode(s) got no usable answer ({sorted(failures)[:20]}): "
                f"{listed}. The other episodes' answers are cached under {self.cache_dir}: a rerun asks only "
                "for the failed ones"
            )

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Progress of one episode: the sampled frames asked (or read from the cache), the others
        interpolated. Returns {"progress": (N,)} (+ "log_prob" in logprob mode) for `inputs.frame_indices`
        (N = T when None)."""
        if self._camera is None:
            raise RewardkitError(
                "vlm_progress does not know which camera to show: set camera (--model.options='{camera: "
                "observation.images.<name>}') or label through the labeller, which picks the first"
            )
        if inputs.frames is None:
            raise RewardkitError(f"episode {inputs.episode_index}: vlm_progress needs decoded frames")
        positions = sample_positions(inputs.length, self.config.num_frames)
        frames = np.asarray(inputs.frames(self._camera))
        if len(frames) != inputs.length:
            raise RewardkitError(
                f"episode {inputs.episode_index}: camera '{self._camera}' has {len(frames)} frames, the "
                f"episode {inputs.length}"
            )
        sampled = self.score_episode(frames[positions], inputs.task, f"episode {inputs.episode_index}")
        wanted = (
            np.arange(inputs.length) if inputs.frame_indices is None else np.asarray(inputs.frame_indices)
        )
        return {
            name: np.interp(wanted, positions, values).astype(np.float32) for name, values in sampled.items()
        }  # type: ignore[return-value]

    def compute_reward(self, batch: dict[str, Tensor]) -> Tensor:
        raise RewardkitError(
            "vlm_progress scores whole episodes (label_episode) or a stream of frames (online()), not a "
            "batch of single observations"
        )

    def online(self, **kwargs: Any) -> Any:
        """`VLMProgressOnline`: every `online_every`-th step asks about the frames seen so far (see its
        docstring for the cost per step)."""
        from .online_vlm_progress import VLMProgressOnline

        return VLMProgressOnline(self, **kwargs)


def _chat_text(answer: dict[str, Any]) -> str:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise VLMAnswerError(f"the server did not answer a chat completion: {str(answer)[:200]}") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(item.get("text", "") for item in content if isinstance(item, dict))
    return content if isinstance(content, str) else ""


def _collect(pending: dict[int, Future], failures: dict[int, str], wait_for: int) -> None:
    """Wait until `wait_for` of the `pending` episodes are done; remember the failures by episode."""
    from concurrent.futures import FIRST_COMPLETED, wait

    finished = 0
    while pending and finished < wait_for:
        done, _ = wait(list(pending.values()), return_when=FIRST_COMPLETED)
        for episode_index in [e for e, future in pending.items() if future in done]:
            error = pending.pop(episode_index).exception()
            if isinstance(error, BackendError):  # the server itself fails: the next episodes would too
                for future in pending.values():
                    future.cancel()
                raise error
            if isinstance(error, RewardkitError):
                failures[episode_index] = str(error)
            elif error is not None:
                raise error
            finished += 1
