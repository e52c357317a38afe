"""Configuration of lerobot's Robometer run as a rewardkit model (registered as `rewardkit_robometer`)."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs.rewards import RewardModelConfig
from lerobot.rewards.robometer.compute_rabc_weights import DEFAULT_NUM_SUBSAMPLED_FRAMES
from lerobot.rewards.robometer.configuration_robometer import RobometerConfig

from rewardkit.models.base import RewardKitConfig


@RewardModelConfig.register_subclass("rewardkit_robometer")
@dataclass
class RewardkitRobometerConfig(RobometerConfig, RewardKitConfig):
    """lerobot's `RobometerConfig` (every field of it, same meaning) plus how rewardkit labels with it.

    Robometer (a Qwen3-VL fine-tune) reads up to `max_frames` frames of one camera and the task text and
    gives, for each frame it reads, a progress (a softmax over `progress_discrete_bins` bins, projected on
    their centres) and a success logit. lerobot labels frame t of an episode from `frames_per_query`
    frames spread evenly over [0, t] (both ends included) and keeps the last frame's outputs; so do we.

    The fields lerobot's config defines and rewardkit reads:
        pretrained_path: the checkpoint this config came from; never None here (None would make lerobot's
            model download the base Qwen weights instead of building the architecture from `vlm_config`).
        image_key: the camera Robometer reads (e.g. "observation.images.top").
        default_task: the task text used when an episode or observation has none.
        max_frames: the most frames one query may hold (Robometer-4B was trained with up to 8).
        base_model_id: the Qwen3-VL the checkpoint was fine-tuned from; its processor (tokenizer, image
            processor, chat template) is the one Robometer reads (hub id or local folder).
        torch_dtype: the backbone's dtype ("bfloat16", "float32", ...).
        vlm_config: the backbone's Qwen3-VL config (model_type must be "qwen3_vl").

    Fields rewardkit adds:
        frames_per_query: frames per query (K): frame t is scored from round(linspace(0, t, K)); lerobot's
            labeller uses 4 (`compute_rabc_weights.DEFAULT_NUM_SUBSAMPLED_FRAMES`). At most `max_frames`.
        label_batch_size: queries (frames) per forward pass when labelling.
        processor_path: where the processor is read from instead of `base_model_id` (a local folder or hub
            id; None: `base_model_id`). Use it to run offline with a local copy of the base processor.
        online_every: online, score every k-th step (and the first); the steps between repeat the last
            score. 1: every step (equal to labelling).
    """

    frames_per_query: int = DEFAULT_NUM_SUBSAMPLED_FRAMES
    label_batch_size: int = 8
    processor_path: str | None = None
    online_every: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        from rewardkit.errors import RewardkitError

        if self.pretrained_path is None:
            raise RewardkitError(
                "rewardkit_robometer needs pretrained_path (the checkpoint it describes): with None, lerobot's "
                "Robometer would download and fine-tune-initialise the base Qwen weights"
            )
        limit = self.max_frames if self.max_frames is not None else self.frames_per_query
        if not 1 <= self.frames_per_query <= limit:
            raise RewardkitError(
                f"frames_per_query must be in 1..max_frames ({limit}), got {self.frames_per_query}"
            )
        if self.label_batch_size < 1 or self.online_every < 1:
            raise RewardkitError(
                f"label_batch_size and online_every must be >= 1, got {self.label_batch_size}, "
                f"{self.online_every}"
            )
