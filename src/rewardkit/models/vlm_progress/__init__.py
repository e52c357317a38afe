"""Zero-shot progress from a VLM behind an OpenAI-compatible server (registered as `rewardkit_vlm_progress`;
named model `vlm_progress`: `rewardkit.load("vlm_progress:<served model>", base_url=..., mode=...)`,
`--model.type=vlm_progress --model.vlm=<served model> --model.options='{...}'`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from rewardkit.errors import RewardkitError
from rewardkit.models.base import register_named_model

from .configuration_vlm_progress import VLMProgressConfig
from .modeling_vlm_progress import VLMAnswerError, VLMProgressRewardModel
from .online_vlm_progress import VLMProgressOnline


def build_vlm_progress(served_model: str | None, **options: Any) -> VLMProgressRewardModel:
    """The named-model builder: `served_model` (the spec's argument) and `options` (config fields)."""
    known = {f.name for f in dataclasses.fields(VLMProgressConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RewardkitError(
            f"vlm_progress: unknown option(s) {unknown}; known: base_url, api_key_env, allow_insecure_http, "
            "mode, num_frames, camera, seed, concurrency, timeout_s, max_retries, backoff_s, max_tokens, "
            "temperature, max_image_side, image_format, cache_dir, online_every"
        )
    if served_model:
        options["served_model"] = served_model
    if not options.get("served_model"):
        raise RewardkitError(
            "vlm_progress needs the served model name: --model.vlm=NAME, or rewardkit.load('vlm_progress:NAME')"
        )
    options.setdefault("device", "cpu")
    return VLMProgressRewardModel(VLMProgressConfig(**options))


register_named_model("vlm_progress", build_vlm_progress)

__all__ = [
    "VLMAnswerError",
    "VLMProgressConfig",
    "VLMProgressRewardModel",
    "VLMProgressOnline",
    "build_vlm_progress",
]
