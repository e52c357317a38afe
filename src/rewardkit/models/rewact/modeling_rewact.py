"""RewACT: lerobot's ACT policy with a reward (task-progress) head.

The ACT network is lerobot's own (`lerobot.policies.act.modeling_act.ACT`), untouched. RewACT adds:

- **A reward head** (MLP d -> d/2 -> d/4 -> 1, ReLU, sigmoid; or d/4 -> K bin logits for the
  distributional head) reading the transformer decoder's output at **position 0**: the query of the first
  action of the chunk, i.e. the current step, whose observation the progress describes. The decoder output
  is captured with a forward hook on `model.decoder`, so ACT's forward runs exactly as in lerobot. By
  default (`reward_head_detach`) the head reads those features detached: the reward loss trains the head
  only, and ACT's network gets exactly plain ACT's gradients (the reward cannot cost the policy).
- **Joint training** with or without the VAE: `forward` adds `reward_loss_weight * reward_loss` to ACT's
  loss whatever `use_vae` is (the reference trained the head only when the VAE was on).
- **Targets looked up by global frame index.** At construction (lerobot's `make_policy` passes the
  dataset metadata) the policy builds a per-frame target table once for the whole dataset (N,) and keeps it
  as a non-persistent buffer; `forward` reads `table[batch["index"]]`. Lerobot's dataloader and processors
  carry `index` through unchanged, so no dataset wrapper or processor step is needed, the lookup is one
  gather on the device, and checkpoints stay free of targets. A batch may also carry its own targets under
  `"progress"` (B,), which take precedence.
- **Inference**: `select_action` returns `(action, reward)` on every call with ACT's action queue. With
  `reward_refresh="every_step"` a queued step computes a fresh reward for the latest observation with the
  exact cheap path: the decoder runs its position-0 query alone. With one decoder layer (ACT's default)
  this is exact, because the decoder's input is all zeros, so its self-attention output is the same
  constant for every query and each query's output depends only on its own position embedding and the
  encoder output. The backbone and encoder still run; the 100-query decoder and action head do not.
  `"on_refill"` repeats the reward computed with the chunk. `return_reward=False` returns the action only,
  as lerobot's `lerobot-eval` expects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE
from torch import Tensor, nn

from rewardkit.errors import RewardkitError
from rewardkit.models.base import (
    CheckpointError,
    EpisodeInputs,
    FrameOutputs,
    ModelInputs,
    load_weights,
    read_config_dict,
    resolve_checkpoint,
)
from rewardkit.models.rewact.configuration_rewact import RewACTConfig
from rewardkit.models.safe_processors import load_processor_pipeline

if TYPE_CHECKING:
    from rewardkit.models.rewact.online_rewact import RewactOnline

logger = logging.getLogger(__name__)

# Optional per-sample targets a batch may carry instead of the index lookup: (B,) in [0, 1], NaN = none.
PROGRESS_KEY = "progress"
# lerobot's global frame index of each sample: (B,) int64.
INDEX_KEY = "index"
# The detached head's gradient is scaled by this in backward, and its AdamW epsilon by the same: Adam's
# step is invariant to a constant gradient scale once epsilon scales with it, so the head learns exactly as
# unscaled, while its share of the gradient norm that lerobot-train clips over all parameters (clip 10,
# active on most early steps; the head's norm reaches ~15% of the trunk's) falls below float32 resolution.
# The clip then scales ACT's gradients as it does for plain ACT, and the reward cannot move ACT's step.
DETACHED_HEAD_GRAD_SCALE = 1e-4
# The processor files lerobot-train writes beside the weights.
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"


class RewACTPolicy(ACTPolicy):
    """ACT with a reward head: `select_action` returns `(action, reward)`; see the module docstring.

    Args:
        config: the RewACT configuration.
        dataset_meta: lerobot `LeRobotDatasetMetadata` of the training dataset (passed by lerobot's
            `make_policy`); when given, the per-frame progress targets are built from it.
    """

    config_class = RewACTConfig
    name = "rewact"

    def __init__(self, config: RewACTConfig, dataset_meta: Any = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.config: RewACTConfig = config
        dim = config.dim_model
        distributional = config.reward_head == "distributional"
        self._head_parts = config.reward_head_parts
        state_dim = config.robot_state_feature.shape[0] if config.robot_state_feature else 0
        if "state" in self._head_parts and not state_dim:
            raise RewardkitError(
                f"reward_head_input={config.reward_head_input!r} reads observation.state, which this "
                "policy has no feature for: drop '+state'"
            )
        in_dim = dim * sum(part in self._head_parts for part in ("decoder", "encoder"))
        in_dim += state_dim if "state" in self._head_parts else 0
        layers: list[nn.Module] = [
            nn.Linear(in_dim, dim // 2),
            nn.ReLU(),
            nn.Linear(dim // 2, dim // 4),
            nn.ReLU(),
            nn.Linear(dim // 4, config.reward_num_bins if distributional else 1),
        ]
        if not distributional:
            layers.append(nn.Sigmoid())
        self.reward_head = nn.Sequential(*layers)
        bins = config.reward_num_bins if distributional else 0
        self.register_buffer("reward_bin_centers", torch.linspace(0.0, 1.0, bins), persistent=False)
        self.register_buffer("progress_targets", torch.empty(0), persistent=False)
        # The checkpoint's processors (set by `from_pretrained`): `label_episode` normalises with the
        # pre-processor; the post-processor unnormalises actions.
        self.preprocessor: Any = None
        self.postprocessor: Any = None

        self._decoder_out: Tensor | None = None
        self._encoder_out: Tensor | None = None
        self._first_query_only = False
        self.model.decoder.register_forward_pre_hook(self._decoder_pre_hook, with_kwargs=True)
        self.model.decoder.register_forward_hook(self._decoder_hook)
        if "encoder" in self._head_parts:
            self.model.encoder.register_forward_hook(self._encoder_hook)

        if dataset_meta is not None and config.reward_loss_weight > 0:
            self.set_progress_targets(build_progress_targets(config, dataset_meta))

    # ---- decoder hooks ---------------------------------------------------------------------------
    def _decoder_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not self._first_query_only:
            return None
        # decoder(x (S, B, D), encoder_out, decoder_pos_embed=(S, 1, D), encoder_pos_embed=...): keep query 0.
        x, *rest = args
        kwargs = dict(kwargs)
        kwargs["decoder_pos_embed"] = kwargs["decoder_pos_embed"][:1]
        return (x[:1], *rest), kwargs

    def _decoder_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        self._decoder_out = output  # (S, B, D)

    def _encoder_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        self._encoder_out = output  # (S_enc, B, D): latent, state and image tokens

    def _take_reward_features(self, batch: dict[str, Tensor]) -> Tensor:
        """The reward head's input for the last forward, (B, F): the decoder output at position 0
        (B, D), then, as `reward_head_input` asks, the mean of the encoder's output tokens (B, D) and the
        normalised robot state of the batch (B, S)."""
        out, self._decoder_out = self._decoder_out, None
        encoder_out, self._encoder_out = self._encoder_out, None
        if out is None:
            raise RuntimeError("the ACT decoder did not run")
        features = [out[0]] if "decoder" in self._head_parts else []
        if "encoder" in self._head_parts:
            if encoder_out is None:
                raise RuntimeError("the ACT encoder did not run")
            features.append(encoder_out.mean(dim=0))
        if self.config.reward_head_detach:
            # The reward loss then trains the head alone: ACT's network gets plain ACT's gradients.
            features = [feature.detach() for feature in features]
        if "state" in self._head_parts:
            features.append(batch[OBS_STATE].to(out.dtype))
        return features[0] if len(features) == 1 else torch.cat(features, dim=-1)

    @property
    def first_query_is_exact(self) -> bool:
        """Whether running decoder query 0 alone gives exactly the full decoder's position-0 output."""
        return self.config.n_decoder_layers == 1

    def get_optim_params(self) -> list[dict]:
        """ACT's parameter groups (the backbone at `optimizer_lr_backbone`) and the reward head in a group
        of its own at `reward_head_lr_scale * optimizer_lr` (lerobot-train's optimiser reads these); with
        the detached head, that group's AdamW epsilon is scaled like its gradient
        (`DETACHED_HEAD_GRAD_SCALE`)."""
        head = {id(p) for p in self.reward_head.parameters()}
        groups = super().get_optim_params()
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) not in head]
        head_lr = self.config.reward_head_lr_scale * self.config.optimizer_lr
        head = {"params": list(self.reward_head.parameters()), "lr": head_lr}
        if self.config.reward_head_detach:
            head["eps"] = self.config.get_optimizer_preset().eps * DETACHED_HEAD_GRAD_SCALE
        return [*groups, head]

    # ---- reward readout and loss -----------------------------------------------------------------
    def _reward_from_head(self, head_out: Tensor) -> Tensor:
        """(B, 1) sigmoid output or (B, K) logits -> (B,) progress in [0, 1]."""
        if self.config.reward_head == "distributional":
            return head_out.softmax(dim=-1) @ self.reward_bin_centers
        return head_out[:, 0]

    def reward_loss_per_sample(self, head_out: Tensor, target: Tensor) -> Tensor:
        """Reward loss of each sample, (B,): squared error (scalar head) or two-hot cross-entropy
        (distributional head); 0 for samples without a target (NaN in `target`, (B,))."""
        valid = ~torch.isnan(target)
        # Targets may arrive as float64 (a parquet table) while the head runs in float32/bf16.
        target = torch.where(valid, target, torch.zeros_like(target)).clamp(0.0, 1.0).to(head_out.dtype)
        if self.config.reward_head == "scalar":
            loss = (head_out[:, 0] - target).pow(2)
        else:
            # Two-hot encoding: the target's mass split between its two neighbouring bins, so that the
            # expected value of the target distribution is the target itself.
            num_bins = self.config.reward_num_bins
            position = target * (num_bins - 1)
            lower = position.floor().long().clamp(max=num_bins - 2)
            upper_weight = position - lower
            target_dist = torch.zeros_like(head_out)
            target_dist.scatter_(1, lower[:, None], (1 - upper_weight)[:, None])
            target_dist.scatter_add_(1, (lower + 1)[:, None], upper_weight[:, None])
            loss = -(target_dist * head_out.log_softmax(dim=-1)).sum(dim=-1)
        return torch.where(valid, loss, torch.zeros_like(loss))

    # ---- targets ---------------------------------------------------------------------------------
    def set_progress_targets(self, targets: np.ndarray | Tensor) -> None:
        """Set the per-frame target table, (N,) indexed by the dataset's global frame `index` (NaN: none)."""
        table = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        if table.ndim != 1:
            raise RewardkitError(f"progress targets must be a (N,) array, got shape {tuple(table.shape)}")
        self.progress_targets = table.to(self.reward_bin_centers.device)

    def progress_targets_for(self, batch: dict[str, Tensor]) -> Tensor:
        """The progress target of each sample, (B,) float32 (NaN where the frame has none)."""
        if PROGRESS_KEY in batch:
            return torch.as_tensor(batch[PROGRESS_KEY], dtype=torch.float32).reshape(-1)
        if self.progress_targets.numel() == 0:
            raise RewardkitError(
                "RewACT has no progress targets: build the policy with the dataset metadata "
                "(RewACTPolicy(config, dataset_meta=...), as lerobot's make_policy does), call "
                "set_progress_targets(...), or put (B,) targets in batch['progress']; or set "
                "reward_loss_weight=0"
            )
        if INDEX_KEY not in batch:
            raise RewardkitError(
                "RewACT training needs the batch's global frame 'index' to look up its targets"
            )
        index = torch.as_tensor(batch[INDEX_KEY]).reshape(-1).long().to(self.progress_targets.device)
        if int(index.max()) >= self.progress_targets.numel() or int(index.min()) < 0:
            raise RewardkitError(
                f"frame index {int(index.max())} is outside the progress target table "
                f"({self.progress_targets.numel()} frames): targets built for another dataset?"
            )
        return self.progress_targets[index]

    # ---- training --------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], reduction: str = "mean") -> tuple[Tensor, dict]:
        """ACT's loss plus `reward_loss_weight` times the reward loss.

        Batch: ACT's keys (observation.state (B, S), cameras (B, 3, H, W), action (B, chunk, A),
        action_is_pad (B, chunk)) and `index` (B,) (or `progress` (B,)).

        Args:
            reduction: "mean" (the training loss, a scalar) or "none" (one loss per sample, (B,): ACT's
                masked L1 per sample + kl_weight * KL + reward_loss_weight * reward loss, lerobot's
                sample-weighting contract). Samples without a target add no reward loss. With a target for
                every sample and no padded action, the mean of the "none" losses equals the "mean" loss.

        Returns:
            (loss, logs); logs hold the batch means "l1_loss", "kld_loss" (VAE) and "reward_loss".
        """
        if reduction not in ("mean", "none"):
            raise RewardkitError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        weight = self.config.reward_loss_weight
        target = self.progress_targets_for(batch) if weight > 0 else None
        if reduction == "mean":
            loss, logs = super().forward(batch)
        else:
            loss, logs = act_per_sample_loss(self, batch)
        head_out = self.reward_head(self._take_reward_features(batch))
        if target is not None:
            target = target.to(head_out.device)
            per_sample = self.reward_loss_per_sample(head_out, target)
            valid = int((~torch.isnan(target)).sum())
            # The mean over the samples that have a target (0, with a gradient path, when none has).
            reward_loss = per_sample.sum() / max(valid, 1)
            logs["reward_loss"] = reward_loss.item()
            reward_term = reward_loss if reduction == "mean" else per_sample
            if self.config.reward_head_detach:
                reward_term = scale_gradient(reward_term, DETACHED_HEAD_GRAD_SCALE)
            loss = loss + weight * reward_term
        return loss, logs

    # ---- inference -------------------------------------------------------------------------------
    def _run(self, batch: dict[str, Tensor], reward_only: bool = False) -> tuple[Tensor, Tensor]:
        """One ACT forward: ((B, chunk, A) actions, (B,) reward); `reward_only` decodes query 0 alone."""
        if self.config.image_features:
            batch = dict(batch)
            batch[OBS_IMAGES] = [batch[key] for key in self.config.image_features]
        self._first_query_only = reward_only and self.first_query_is_exact
        try:
            actions = self.model(batch)[0]
        finally:
            self._first_query_only = False
        reward = self._reward_from_head(self.reward_head(self._take_reward_features(batch)))
        return actions, reward

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        """A chunk of actions (B, chunk_size, A) for normalised observations (as ACT)."""
        self.eval()
        return self._run(batch)[0]

    @torch.no_grad()
    def predict_action_chunk_and_reward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Actions (B, chunk_size, A) and progress (B,) in [0, 1] from one forward pass."""
        self.eval()
        return self._run(batch)

    @torch.no_grad()
    def predict_reward(self, batch: dict[str, Tensor]) -> Tensor:
        """Progress (B,) in [0, 1] of normalised observations (the pre-processor's output).

        Runs the backbone, the encoder and decoder query 0 only (exact with one decoder layer).
        """
        self.eval()
        return self._run(batch, reward_only=True)[1]

    # The reward-model verbs of rewardkit (`predict_progress`) and lerobot (`compute_reward`).
    predict_progress = predict_reward
    compute_reward = predict_reward

    def reset(self) -> None:
        """Clear the action queue (and the last reward); call at every environment reset."""
        super().reset()
        self._last_reward: Tensor | None = None

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor] | Tensor:
        """The next action (B, A) and the progress (B,) of the latest observation.

        The action comes from ACT's queue (or temporal ensembler); the model runs when the queue is empty,
        and that one forward gives both the chunk and the reward. On queued steps the reward is refreshed
        for the latest observation (`reward_refresh="every_step"`, the cheap query-0 path) or repeated
        (`"on_refill"`). Returns `(action, reward)`, or the action alone when `config.return_reward` is
        false (lerobot-eval feeds select_action's result straight to its post-processor).
        """
        self.eval()
        want_reward = self.config.return_reward
        if self.config.temporal_ensemble_coeff is not None:
            actions, reward = self._run(batch)
            action = self.temporal_ensembler.update(actions)
            return (action, reward) if want_reward else action

        if len(self._action_queue) == 0:
            actions, reward = self._run(batch)
            self._action_queue.extend(actions[:, : self.config.n_action_steps].transpose(0, 1))
            self._last_reward = reward
        elif want_reward and (self.config.reward_refresh == "every_step" or self._last_reward is None):
            self._last_reward = self._run(batch, reward_only=True)[1]
        action = self._action_queue.popleft()
        return (action, self._last_reward) if want_reward else action

    # ---- the one way in ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | Path,
        *,
        config: RewACTConfig | None = None,
        revision: str | None = None,
        strict: bool = True,
        dataset_meta: Any = None,
        **kwargs: Any,
    ) -> RewACTPolicy:
        """Load a RewACT checkpoint (folder or hub repo): what `rewardkit.load` returns.

        Weights load strictly from `model.safetensors` (a missing, unexpected or mis-shaped tensor is an
        error); `policy_preprocessor.json` / `policy_postprocessor.json`, when present, become
        `policy.preprocessor` / `policy.postprocessor` through `rewardkit.models.safe_processors` (only
        lerobot's registered data steps: a checkpoint never names code that runs on load). The backbone's
        ImageNet weights are not fetched: the checkpoint's weights replace them.

        Args:
            pretrained_name_or_path: a checkpoint folder or a hub repo id.
            config: a config to use instead of the folder's (lerobot-train passes the parsed config with
                its command-line overrides when fine-tuning).
            revision: hub revision.
            strict: refuse weights that do not match the model exactly (default).
            dataset_meta: lerobot dataset metadata of a training dataset (builds the progress targets,
                as in `__init__`).
            **kwargs: lerobot's other loader arguments (hub download options, `dataset_stats`): ignored.

        Returns:
            The policy in eval mode on `config.device`.
        """
        folder = resolve_checkpoint(pretrained_name_or_path, revision=revision)
        if config is None:
            config = read_rewact_config(folder)
        elif not isinstance(config, RewACTConfig):
            raise CheckpointError(f"RewACTPolicy needs a RewACTConfig, got {type(config).__name__}")
        # Building ACT's backbone with its pretrained weights would download them, only for
        # model.safetensors to overwrite them; the config keeps its value for later training runs.
        backbone_weights = config.pretrained_backbone_weights
        config.pretrained_backbone_weights = None
        try:
            policy = cls(config, dataset_meta=dataset_meta)
        finally:
            config.pretrained_backbone_weights = backbone_weights
        load_weights(policy, folder / "model.safetensors", strict=strict)
        policy.to(config.device)
        from lerobot.processor.converters import (
            batch_to_transition,
            policy_action_to_transition,
            transition_to_batch,
            transition_to_policy_action,
        )

        if (folder / PREPROCESSOR_FILE).is_file():
            policy.preprocessor = load_processor_pipeline(
                folder, PREPROCESSOR_FILE, batch_to_transition, transition_to_batch
            )
        if (folder / POSTPROCESSOR_FILE).is_file():
            policy.postprocessor = load_processor_pipeline(
                folder, POSTPROCESSOR_FILE, policy_action_to_transition, transition_to_policy_action
            )
        return policy.eval()

    def online(self, act: bool = False) -> RewactOnline:
        """This policy's reward (and with `act=True` its action) one observation at a time (see
        `rewact/online_rewact.py`)."""
        from rewardkit.models.rewact.online_rewact import RewactOnline

        return RewactOnline(self, act=act)

    # ---- whole-episode labelling (rewardkit label / viz / eval) ----------------------------------
    def required_inputs(self) -> ModelInputs:
        """Raw frames of every camera the policy reads, and the state when it reads one."""
        if self.config.env_state_feature:
            raise RewardkitError(
                "RewACT policies that read observation.environment_state cannot label episodes"
            )
        return ModelInputs(
            cameras=list(self.config.image_features),
            encoder=None,
            state=self.config.robot_state_feature is not None,
        )

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Progress of every frame of one episode, `label_batch_size` frames per forward pass.

        Reads `inputs.frames(camera)` (T, H, W, 3) uint8 and `inputs.state` (T, S); normalises them with the
        checkpoint's pre-processor. Returns {"progress": (T,) float32}, or (N,) for `inputs.frame_indices`.
        """
        if self.preprocessor is None:
            raise CheckpointError(
                "this RewACT policy has no pre-processor (normalisation statistics) to label episodes: load "
                "a checkpoint folder saved by lerobot-train (with policy_preprocessor.json) via "
                "rewardkit.load, or set policy.preprocessor"
            )
        needs = self.required_inputs()
        if inputs.frames is None:
            raise RewardkitError(
                f"episode {inputs.episode_index}: RewACT needs decoded frames (inputs.frames)"
            )
        frame_indices = getattr(inputs, "frame_indices", None)
        positions = (
            np.arange(inputs.length) if frame_indices is None else np.asarray(frame_indices, dtype=int)
        )
        frames = {}
        for camera in needs.cameras:
            video = np.asarray(inputs.frames(camera))
            if video.ndim != 4 or video.shape[0] != inputs.length or video.shape[-1] != 3:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: camera {camera} frames have shape {video.shape}, "
                    f"expected ({inputs.length}, H, W, 3)"
                )
            frames[camera] = video
        state = None
        if needs.state:
            if inputs.state is None:
                raise RewardkitError(f"episode {inputs.episode_index}: RewACT needs observation.state")
            state = np.asarray(inputs.state, dtype=np.float32)
            if state.shape[0] != inputs.length:
                raise RewardkitError(
                    f"episode {inputs.episode_index}: state has {state.shape[0]} rows for {inputs.length} frames"
                )
        progress = []
        for start in range(0, len(positions), self.config.label_batch_size):
            chunk = positions[start : start + self.config.label_batch_size]
            batch: dict[str, Any] = {
                camera: torch.from_numpy(video[chunk]).permute(0, 3, 1, 2).float().div_(255.0)
                for camera, video in frames.items()
            }
            if state is not None:
                batch[OBS_STATE] = torch.from_numpy(state[chunk])
            progress.append(self.predict_reward(self.preprocessor(batch)).float().cpu().numpy())
        values = np.concatenate(progress) if progress else np.zeros(0, dtype=np.float32)
        return {"progress": values.astype(np.float32)}


def read_rewact_config(folder: Path) -> RewACTConfig:
    """The RewACT config of a checkpoint folder; a config of another type is a CheckpointError."""
    from lerobot.configs import PreTrainedConfig

    saved = read_config_dict(folder)  # a missing or corrupt config.json is named first
    try:
        config = PreTrainedConfig.from_pretrained(folder)
    except Exception as e:
        raise CheckpointError(f"cannot parse {folder / 'config.json'} as a RewACT config: {e}") from e
    if not isinstance(config, RewACTConfig):
        raise CheckpointError(f"{folder / 'config.json'} is a '{config.type}' checkpoint, not 'rewact'")
    # Checkpoints saved before the head read the robot state (issue 17) have a decoder-only head trained
    # at the transformer's rate: their config lacks the fields, whose new defaults would not fit them.
    if "reward_head_input" not in saved:
        config.reward_head_input = "decoder"
    if "reward_head_lr_scale" not in saved:
        config.reward_head_lr_scale = 1.0
    # Checkpoints saved before the detached head trained the shared network with the reward loss too.
    if "reward_head_detach" not in saved:
        config.reward_head_detach = False
    return config


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """`x` unchanged in forward; its gradient multiplied by `scale` in backward."""
    return _ScaleGradient.apply(x, scale)


# ---- ACT's loss per sample ---------------------------------------------------------------------------
def masked_mean_per_sample(elementwise: Tensor, is_pad: Tensor | None) -> Tensor:
    """Mean over all but the batch dim of (B, T, D) `elementwise`, skipping steps where is_pad (B, T)."""
    if is_pad is None:
        return elementwise.flatten(1).mean(dim=1)
    valid = (~is_pad.bool()).unsqueeze(-1).to(elementwise.dtype)  # (B, T, 1)
    count = valid.sum(dim=(1, 2)) * elementwise.shape[-1]
    return (elementwise * valid).sum(dim=(1, 2)) / count.clamp_min(1)


def act_per_sample_loss(policy: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """ACT's training loss per sample: masked L1 over the action chunk + kl_weight * KL (when the VAE is on).

    lerobot's `ACTPolicy.forward` only returns the batch mean; RewACT's `forward(reduction="none")` and
    RA-BC's per-sample loss for plain ACT (`rewardkit.rabc.per_sample_loss`) both use this one.

    Args:
        policy: a lerobot `ACTPolicy` or a `RewACTPolicy` (uses `policy.model` and `policy.config`).
        batch: ACT's training batch: "action" (B, chunk, A), "action_is_pad" (B, chunk), state/images.

    Returns:
        (loss (B,), logs with the batch means of "l1_loss" and "kld_loss").
    """
    config = policy.config
    if config.image_features:
        batch = dict(batch)
        batch[OBS_IMAGES] = [batch[key] for key in config.image_features]
    actions_hat, (mu, log_sigma_x2) = policy.model(batch)
    l1 = masked_mean_per_sample(
        F.l1_loss(batch[ACTION], actions_hat, reduction="none"), batch.get("action_is_pad")
    )
    logs = {"l1_loss": l1.mean().item()}
    loss = l1
    if config.use_vae and log_sigma_x2 is not None:
        # KL(N(mu, sigma) || N(0, 1)) summed over latent dims, one value per sample.
        kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1)
        logs["kld_loss"] = kld.mean().item()
        loss = l1 + config.kl_weight * kld
    return loss, logs


# ---- per-frame targets for a whole dataset -----------------------------------------------------------
PARQUET_COLUMNS = {"progress_sparse": "progress", "progress_dense": "progress_dense"}


def build_progress_targets(config: RewACTConfig, dataset_meta: Any) -> np.ndarray:
    """The progress target of every frame of a dataset, (N,) float32 indexed by global frame `index`.

    The targets are exactly the ones `rewardkit eval` scores against: per episode they come from
    `rewardkit.data.annotations.load_progress_targets` (keyframes, failed episodes, keyframes that drop
    counted as failures, failure frames) or, for `reward_targets="parquet"`, from the progress parquet
    read by `rewardkit.labelling.parquet.read_progress_parquet`; this function only lays them out by the
    dataset's global frame index. Frames without a target (rows missing from the parquet, NaN) are NaN
    and do not contribute to the loss.
    """
    from rewardkit.data.annotations import load_progress_targets
    from rewardkit.labelling.parquet import read_progress_parquet

    episodes = dataset_meta.episodes
    if episodes is None:
        raise RewardkitError(f"dataset {dataset_meta.root} has no episode metadata to build progress targets")
    columns = ["episode_index", "dataset_from_index", "dataset_to_index"]
    table = episodes.select_columns(columns).with_format("numpy")[:]
    ranges = {int(e): (int(a), int(b)) for e, a, b in zip(*(table[c].tolist() for c in columns), strict=True)}
    total = max(int(dataset_meta.total_frames), max((b for _, b in ranges.values()), default=0))
    targets = np.full(total, np.nan, dtype=np.float32)
    if config.reward_targets == "parquet":
        path = Path(config.reward_targets_path)
        key = PARQUET_COLUMNS.get(config.reward_target_column)
        if key is None:
            raise RewardkitError(
                f"reward_target_column must be one of {sorted(PARQUET_COLUMNS)}, got "
                f"{config.reward_target_column!r}"
            )
        read, _ = read_progress_parquet(path, with_index=True)
        for episode, outputs in read.items():
            if key not in outputs:
                raise RewardkitError(f"progress parquet {path} has no column '{config.reward_target_column}'")
            start, stop = ranges.get(episode, (0, 0))
            index = outputs["index"]
            if episode not in ranges or len(index) and (index.min() < start or index.max() >= stop):
                raise RewardkitError(
                    f"progress parquet {path}: the rows of episode {episode} are not frames of that episode "
                    f"in dataset {dataset_meta.root}: a file labelled on another dataset?"
                )
            values = outputs[key]
            known = values[~np.isnan(values)]
            if len(known) and (known.min() < 0 or known.max() > 1):
                raise RewardkitError(
                    f"progress parquet {path}: column '{config.reward_target_column}' has values outside "
                    f"[0, 1] in episode {episode}"
                )
            targets[index] = values
        return targets
    failed = config.failed_episodes
    if config.failure_frames is not None:
        failed = dict(zip(config.failed_episodes, config.failure_frames, strict=True))
    by_episode = load_progress_targets(
        dataset_meta.root,
        keyframes=config.reward_targets_path if config.reward_targets == "keyframe" else None,
        failed=failed,
        failure_target=config.failure_target,
        start=config.reward_target_start,
        end=config.reward_target_end,
    )
    for episode, values in by_episode.items():
        start, stop = ranges[episode]
        targets[start:stop] = values
    return targets
