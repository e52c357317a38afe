"""Configuration of TOPReward as a rewardkit model (zero-shot: a Qwen3-VL and a prompt, no trained weights)."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs.rewards import RewardModelConfig
from lerobot.rewards.topreward.configuration_topreward import (
    DEFAULT_PROMPT_PREFIX,
    DEFAULT_PROMPT_SUFFIX_TEMPLATE,
    TOPRewardConfig,
)

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardKitConfig

# lerobot's default backbone (Qwen/Qwen3-VL-8B-Instruct): one source of truth.
DEFAULT_VLM = TOPRewardConfig.vlm_name
NORMALIZE_MODES = ("episode", "running")


@RewardModelConfig.register_subclass("rewardkit_topreward")
@dataclass
class CachedTOPRewardConfig(RewardKitConfig):
    """TOPReward (lerobot's `lerobot.rewards.topreward`) scored for every frame from one key/value cache.

    The reward of a prefix of frames 0..i is log P(last token of the prompt, "True" | video prefix, prompt)
    under a Qwen3-VL; `progress` is that log-probability min-max normalised per episode (as lerobot).

    Args:
        vlm: the Qwen3-VL: a hub id or a local folder (config.json, weights, processor files).
        camera: the camera whose frames make the video.
        fps: the frame rate the video's timestamps are written with (lerobot's `TOPRewardConfig.fps`: the
            prompt says "<t seconds>" with t = frame_index / fps, whatever the dataset's rate).
        prompt_prefix: text after the video, before the instruction (lerobot's default).
        prompt_suffix_template: text after `prompt_prefix`; must contain `{instruction}`. Its last token
            is the one scored (lerobot's default ends with "True").
        add_chat_template: wrap the prompt in the chat template with a generation prompt (lerobot's
            `add_chat_template`).
        num_anchors: prefixes scored per episode, evenly spaced (lerobot's `num_samples`; its script's
            default is 15); None scores every frame (the prefix cache makes that about one pass). Frames
            between anchors are interpolated linearly, as lerobot does.
        normalize: "episode": min-max over the episode's anchors (lerobot; needs the whole episode, so not
            causal); "running": min-max over the anchors up to the frame (causal: what `online` needs).
            A flat range gives 1.0 (lerobot's convention).
        suffix_batch_size: prompt suffixes scored per forward pass from the cached prefix.
        max_input_length: refuse episodes whose prefix + one suffix is longer than this many tokens.
        torch_dtype: the VLM's dtype ("float32", "bfloat16", "float16", or "auto": the checkpoint's).
        attn_implementation: transformers attention ("sdpa", "eager"; "flash_attention_2" cannot take the
            batched suffixes' attention mask).
    """

    vlm: str = DEFAULT_VLM
    camera: str = "observation.images.top"
    fps: float = TOPRewardConfig.fps
    prompt_prefix: str = DEFAULT_PROMPT_PREFIX
    prompt_suffix_template: str = DEFAULT_PROMPT_SUFFIX_TEMPLATE
    add_chat_template: bool = False
    num_anchors: int | None = None
    normalize: str = "episode"
    suffix_batch_size: int = 16
    max_input_length: int = 32768
    torch_dtype: str = "auto"
    attn_implementation: str | None = "sdpa"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.vlm:
            raise RewardkitError("topreward: vlm is empty; give a Qwen3-VL hub id or folder")
        if self.fps <= 0:
            raise RewardkitError(f"topreward: fps must be > 0, got {self.fps}")
        if "{instruction}" not in self.prompt_suffix_template:
            raise RewardkitError("topreward: prompt_suffix_template must contain '{instruction}'")
        if self.num_anchors is not None and self.num_anchors < 2:
            raise RewardkitError(f"topreward: num_anchors must be >= 2 or None, got {self.num_anchors}")
        if self.normalize not in NORMALIZE_MODES:
            raise RewardkitError(
                f"topreward: normalize must be one of {NORMALIZE_MODES}, got '{self.normalize}'"
            )
        if self.suffix_batch_size < 1:
            raise RewardkitError(f"topreward: suffix_batch_size must be >= 1, got {self.suffix_batch_size}")
        if self.attn_implementation == "flash_attention_2":
            raise RewardkitError(
                "topreward: attn_implementation 'flash_attention_2' cannot take the 4D attention mask of the "
                "batched suffixes; use 'sdpa' or 'eager'"
            )
