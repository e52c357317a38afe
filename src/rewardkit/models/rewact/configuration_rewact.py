"""RewACT configuration: lerobot's ACT configuration plus a reward (task-progress) head."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import PreTrainedConfig
from lerobot.policies.act.configuration_act import ACTConfig

from rewardkit.data.targets import FAILURE_TARGETS
from rewardkit.errors import RewardkitError

REWARD_HEADS = ("scalar", "distributional")
REWARD_HEAD_INPUTS = ("decoder", "encoder", "state")
REWARD_TARGETS = ("linear", "keyframe", "failure", "parquet")
REWARD_REFRESH = ("every_step", "on_refill")
REWARD_TARGET_COLUMNS = ("progress_sparse", "progress_dense")


@PreTrainedConfig.register_subclass("rewact")
@dataclass
class RewACTConfig(ACTConfig):
    """Configuration of RewACT: ACT (every `ACTConfig` field, same defaults) with a reward head.

    The reward head reads the transformer decoder's output at position 0 (the query of the first action
    of the chunk, i.e. the current step) and predicts the task progress in [0, 1] of the current
    observation. It is trained jointly with the action loss, with or without the VAE.

    Args:
        reward_head: "scalar" (MLP d -> d/2 -> d/4 -> 1, ReLU, sigmoid; mean-squared error) or
            "distributional" (same MLP ending in `reward_num_bins` logits over uniform bins on [0, 1];
            cross-entropy against the two-hot encoding of the target; read out as the expected value).
        reward_head_input: what the reward head reads, '+'-joined from "decoder" (the decoder output at
            position 0, (B, D)), "encoder" (the mean of the transformer encoder's output tokens, (B, D)) and
            "state" (the normalised robot state, (B, S)); concatenated in that order. All come from the same
            ACT forward that predicts the actions. "auto" (default): "decoder+state" when the policy reads
            a robot state, else "decoder". Measured on the bundled dataset (benchmarks/
            bench_rewact_quality.py): with the decoder output alone the head stays near the mean for
            hundreds of steps (the action loss, whose gradient on the shared decoder is 15-25x the reward
            loss's, keeps moving the features under it); with the state beside it the head ranks held-out
            frames within 100-200 steps, and the action loss is unchanged.
        reward_head_detach: the head reads the decoder/encoder features detached (`.detach()`), so the
            reward loss's gradient never reaches ACT's network: the head still trains jointly (same forward,
            same optimiser step), but the transformer, backbone and action head get exactly the gradient
            of plain ACT, and the reward cannot cost the policy (the only coupling left is lerobot's
            gradient-norm clip over all parameters together). The head has no dropout, so it draws no
            random numbers and ACT's dropout masks are those of plain ACT. Default true: measured in
            benchmarks/bench_rewact_quality.py (demo model, seeds 0/1/2, 100-900 steps, failures marked
            with their frames) the detached head keeps held-out VOC >= 0.99 and failure AUROC 1.0, and the
            action L1 equals plain ACT's to the last bit (the README's RewACT section has the numbers). False lets the reward loss train the
            shared network too (the reference RewACT's behaviour; checkpoints saved before this field load
            with it).
        reward_head_lr_scale: the reward head's learning rate is `reward_head_lr_scale * optimizer_lr`
            (1: the transformer's). Default 10: the head is a small MLP fed features that keep moving under
            it while the action loss trains the trunk; at the transformer's rate it lags behind (measured
            in benchmarks/bench_rewact_quality.py).
        reward_num_bins: number of bins of the distributional head (>= 2).
        reward_loss_weight: weight of the reward loss in the total loss (action L1 + kl_weight * KL +
            reward_loss_weight * reward loss). 0 trains a plain ACT with an untrained head.
        reward_targets: where the per-frame progress targets come from; they are the targets `rewardkit
            eval` scores against (`rewardkit.data.annotations.load_progress_targets`): "linear" (0 up to
            `reward_target_start` of each episode, 1 from `reward_target_end`, linear between), "keyframe"
            (keyframe rewards from the JSON file `reward_targets_path`, {"<episode_index>": [[frame_index,
            reward], ...]}, interpolated monotonically; episodes without keyframes get linear targets;
            keyframes that drop below the level they reached make the episode a failure), "failure"
            (linear, with the failed episodes below), or "parquet" (a progress parquet written by
            `rewardkit label`, path `reward_targets_path`, so a SARM can teach RewACT).
        reward_target_start: fraction of an episode before which the linear target is 0.
        reward_target_end: fraction of an episode from which the linear target is 1.
        reward_targets_path: the keyframes JSON or progress parquet for `reward_targets` "keyframe"/"parquet".
        reward_target_column: the parquet column holding the progress, "progress_sparse" or
            "progress_dense"; frames missing from the parquet (or NaN) do not contribute to the reward loss,
            and rows that are not frames of their episode in the training dataset are an error.
        failed_episodes: episode indices that failed: their targets are capped below 1 and never end at
            1 (`failure_progress`); used by "linear", "keyframe" and "failure" targets.
        failure_frames: the frame (within the episode, 0 included) where each of `failed_episodes` failed,
            in the same order (`--failure_frames` of `rewardkit train`). Without it the frame is unknown and
            a failed episode's linear targets rise to the 0.9 cap and stay there: hardly below a success's
            1, so with longer training the head learned to rate a failure's last frames like a success's
            (benchmarks/bench_rewact_quality.py, seed 0 at 900 steps: a held-out dropped object ended at
            0.99 and the failure AUROC fell to 0.80; with frames see the README's RewACT section).
        failure_target: from a failed episode's failure frame on, "hold" the level reached there (a stalled
            attempt) or "drop" to 0 (`rewardkit.data.targets.failure_progress`); without failure frames it
            changes nothing. Default "hold", as SARM's training (`SARMTrainConfig.failure_target`).
        reward_refresh: at inference, "every_step": `select_action` returns a fresh reward for the latest
            observation on every call (on queued steps this runs the backbone, encoder and one decoder
            query, not the whole chunk); "on_refill": the reward is computed only when the action queue
            refills and repeated on queued steps (no extra compute).
        return_reward: `select_action` returns `(action, reward)` when true, the action alone when false
            (set `--policy.return_reward=false` for `lerobot-eval`, which expects an action tensor).
        label_batch_size: frames per forward pass when labelling whole episodes (`label_episode`).
    """

    reward_head: str = "scalar"
    reward_head_input: str = "auto"
    reward_head_detach: bool = True
    reward_head_lr_scale: float = 10.0
    reward_num_bins: int = 21
    reward_loss_weight: float = 1.0
    reward_targets: str = "linear"
    reward_target_start: float = 0.05
    reward_target_end: float = 0.95
    reward_targets_path: str | None = None
    reward_target_column: str = "progress_sparse"
    failed_episodes: list[int] = field(default_factory=list)
    failure_frames: list[int] | None = None
    failure_target: str = "hold"
    reward_refresh: str = "every_step"
    return_reward: bool = True
    label_batch_size: int = 32

    @property
    def reward_head_parts(self) -> tuple[str, ...]:
        """The parts of the reward head's input (concatenated in the order decoder, encoder, state);
        "auto" is the decoder and, when the policy reads one, the robot state."""
        if self.reward_head_input == "auto":
            return ("decoder", "state") if self.robot_state_feature else ("decoder",)
        return tuple(self.reward_head_input.split("+"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward_head not in REWARD_HEADS:
            raise RewardkitError(f"reward_head must be one of {REWARD_HEADS}, got {self.reward_head!r}")
        parts = self.reward_head_input.split("+") if self.reward_head_input != "auto" else ["decoder"]
        if not parts or any(p not in REWARD_HEAD_INPUTS for p in parts) or len(set(parts)) != len(parts):
            raise RewardkitError(
                f"reward_head_input must be '+'-joined parts of {REWARD_HEAD_INPUTS} (e.g. 'decoder+state'), "
                f"got {self.reward_head_input!r}"
            )
        if self.reward_head_lr_scale <= 0:
            raise RewardkitError(f"reward_head_lr_scale must be > 0, got {self.reward_head_lr_scale}")
        if self.reward_head == "distributional" and self.reward_num_bins < 2:
            raise RewardkitError(f"reward_num_bins must be >= 2, got {self.reward_num_bins}")
        if self.reward_targets not in REWARD_TARGETS:
            raise RewardkitError(
                f"reward_targets must be one of {REWARD_TARGETS}, got {self.reward_targets!r}"
            )
        if self.reward_targets in ("keyframe", "parquet") and not self.reward_targets_path:
            raise RewardkitError(f"reward_targets={self.reward_targets!r} needs reward_targets_path")
        if self.failure_target not in FAILURE_TARGETS:
            raise RewardkitError(
                f"failure_target must be one of {FAILURE_TARGETS}, got {self.failure_target!r}"
            )
        if self.failure_frames is not None and len(self.failure_frames) != len(self.failed_episodes):
            raise RewardkitError(
                f"failure_frames has {len(self.failure_frames)} frames for {len(self.failed_episodes)} "
                "failed_episodes; give one frame per failed episode, in the same order"
            )
        if self.reward_target_column not in REWARD_TARGET_COLUMNS:
            raise RewardkitError(
                f"reward_target_column must be one of {REWARD_TARGET_COLUMNS}, got {self.reward_target_column!r}"
            )
        if not 0.0 <= self.reward_target_start < self.reward_target_end <= 1.0:
            raise RewardkitError(
                "need 0 <= reward_target_start < reward_target_end <= 1, got "
                f"{self.reward_target_start}, {self.reward_target_end}"
            )
        if self.reward_refresh not in REWARD_REFRESH:
            raise RewardkitError(
                f"reward_refresh must be one of {REWARD_REFRESH}, got {self.reward_refresh!r}"
            )
        if self.reward_loss_weight < 0:
            raise RewardkitError(f"reward_loss_weight must be >= 0, got {self.reward_loss_weight}")
        if self.dim_model < 4:
            raise RewardkitError(
                f"dim_model must be >= 4 for the reward head (d/4 units), got {self.dim_model}"
            )
        if self.label_batch_size < 1:
            raise RewardkitError(f"label_batch_size must be >= 1, got {self.label_batch_size}")
