"""Configuration of the zero-shot progress model over an OpenAI-compatible server
(`--model.type=vlm_progress --model.vlm=<served model name>`, saved type `rewardkit_vlm_progress`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lerobot.configs.rewards import RewardModelConfig

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardKitConfig

MODES = ("gvl", "logprob")
DEFAULT_BASE_URL = "http://localhost:8000/v1"


def default_base_url() -> str:
    """`$REWARDKIT_VLM_BASE_URL`, else http://localhost:8000/v1 (vLLM's and SGLang's default)."""
    return os.environ.get("REWARDKIT_VLM_BASE_URL") or DEFAULT_BASE_URL


@RewardModelConfig.register_subclass("rewardkit_vlm_progress")
@dataclass
class VLMProgressConfig(RewardKitConfig):
    """Zero-shot task progress from a vision-language model behind an OpenAI-compatible API (vLLM, SGLang,
    llama.cpp's server, a hosted API). No weights: the config is the whole model.

    Args:
        served_model: the model name the server serves (the `model` field of each request).
        base_url: the API root (default `$REWARDKIT_VLM_BASE_URL`, else http://localhost:8000/v1).
        api_key_env: name of the environment variable holding the API key (read when requests are sent;
            no key is sent when it is unset). The key itself is never stored, printed or cached.
        allow_insecure_http: send the key over plain http:// to a host other than this machine.
        mode: "gvl": one request per episode with `num_frames` frames in a seeded random order and the task,
            asking each frame's completion percentage (GVL); "logprob": one request per sampled frame, the
            prefix of sampled frames up to it and "... The answer is: True", reading the prompt log-probability
            of "True" (TOPReward's signal; needs a server that returns `prompt_logprobs`, e.g. vLLM), min-max
            normalised per episode.
        num_frames: frames sampled per episode (evenly spaced, first and last included); the other frames'
            progress is interpolated linearly between them.
        camera: the camera shown to the model (None: the dataset's first camera; online: the first
            `observation.images.*` key in sorted order).
        seed: seed of the frame shuffle (gvl); the order depends only on the seed and the number of frames.
        concurrency: episodes asked in parallel when labelling a dataset.
        timeout_s: seconds to wait for one answer.
        max_retries: extra attempts after a failed request (connection error, timeout, HTTP 429/5xx, with
            exponential back-off from `backoff_s`, `Retry-After` honoured) and, separately, after a malformed
            answer (wrong frame count, not JSON...).
        backoff_s: first wait before a retry; doubles each retry, at most 60 s.
        max_tokens: answer length limit (gvl).
        temperature: sampling temperature (0: greedy, so a rerun asks the same question).
        max_image_side: frames are shrunk so their long side is at most this before sending.
        image_format: "png" (lossless) or "jpeg" for the frames sent.
        cache_dir: where answers are cached (default `$REWARDKIT_CACHE/vlm`, else ~/.cache/rewardkit/vlm).
        online_every: online, ask the server every k-th step (the frames seen so far, sampled); the steps in
            between repeat the last answer.
    """

    served_model: str = ""
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    allow_insecure_http: bool = False
    mode: str = "gvl"
    num_frames: int = 16
    camera: str | None = None
    seed: int = 0
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    max_tokens: int = 1024
    temperature: float = 0.0
    max_image_side: int = 512
    image_format: str = "png"
    cache_dir: str | None = None
    online_every: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base_url:
            self.base_url = default_base_url()
        if self.mode not in MODES:
            raise RewardkitError(f"vlm_progress: mode must be one of {MODES}, got {self.mode!r}")
        if self.num_frames < 2:
            raise RewardkitError(f"vlm_progress: num_frames must be >= 2, got {self.num_frames}")
        if self.concurrency < 1 or self.online_every < 1:
            raise RewardkitError(
                f"vlm_progress: concurrency and online_every must be >= 1, got {self.concurrency}, "
                f"{self.online_every}"
            )
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0:
            raise RewardkitError(
                f"vlm_progress: need timeout_s > 0, max_retries >= 0, backoff_s >= 0, got {self.timeout_s}, "
                f"{self.max_retries}, {self.backoff_s}"
            )
        if self.image_format.lower() not in ("png", "jpeg", "jpg"):
            raise RewardkitError(f"vlm_progress: image_format must be png or jpeg, got {self.image_format!r}")

    def validate_features(self) -> None:
        """Nothing to check: the model reads raw frames of one camera and the task text."""
