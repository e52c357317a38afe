"""RewACT: lerobot's ACT policy with a reward (task-progress) head.

The ACT network is lerobot's own (`lerobot.policies.act.modeling_act.ACT`), untouched. RewACT adds:

- **A reward head** (MLP d -> d/2 -> d/4 -> 1, ReLU, sigmoid; or d/4 -> K bin logits for the
  distributional head) reading the transformer decoder's output at **position 0**: the query of the first
  action of the chunk, i.e. the current step, whose observation the progress describes. The decoder output
  is captured with a forward hook on `model.decoder`, so ACT's forward runs exactly as in lerobot.
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
from typing import Any

import numpy as np
import torch
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.utils.constants import OBS_IMAGES, OBS_STATE
from torch import Tensor, nn

from rewardkit.data import targets as progress_targets_lib
from rewardkit.data.annotations import read_keyframes
from rewardkit.errors import RewardkitError
from rewardkit.models.base import CheckpointError, EpisodeInputs, ModelInputs
from rewardkit.models.rewact.configuration_rewact import RewACTConfig

logger = logging.getLogger(__name__)

# Optional per-sample targets a batch may carry instead of the index lookup: (B,) in [0, 1], NaN = none.
PROGRESS_KEY = "progress"
# lerobot's global frame index of each sample: (B,) int64.
INDEX_KEY = "index"


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
        layers: list[nn.Module] = [
            nn.Linear(dim, dim // 2),
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
        # Processors used by `label_episode` (set by `rewardkit.load` from the checkpoint folder).
        self.preprocessor: Any = None

        self._decoder_out: Tensor | None = None
        self._first_query_only = False
        self.model.decoder.register_forward_pre_hook(self._decoder_pre_hook, with_kwargs=True)
        self.model.decoder.register_forward_hook(self._decoder_hook)

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

    def _take_reward_features(self) -> Tensor:
        """The decoder output at position 0 of the last forward, (B, D)."""
        out, self._decoder_out = self._decoder_out, None
        if out is None:
            raise RuntimeError("the ACT decoder did not run")
        return out[0]

    @property
    def first_query_is_exact(self) -> bool:
        """Whether running decoder query 0 alone gives exactly the full decoder's position-0 output."""
        return self.config.n_decoder_layers == 1

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

    def _reward_loss(self, head_out: Tensor, target: Tensor) -> Tensor:
        """Mean reward loss over the samples with a target; `target` is (B,) with NaN for none."""
        valid = ~torch.isnan(target)
        if not bool(valid.any()):
            return head_out.sum() * 0.0
        return self.reward_loss_per_sample(head_out, target).sum() / valid.sum()

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
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """ACT's loss plus `reward_loss_weight` times the reward loss.

        Batch: ACT's keys (observation.state (B, S), cameras (B, 3, H, W), action (B, chunk, A),
        action_is_pad (B, chunk)) and `index` (B,) (or `progress` (B,)). Returns (loss, logs).
        """
        weight = self.config.reward_loss_weight
        target = self.progress_targets_for(batch) if weight > 0 else None
        loss, logs = super().forward(batch)
        head_out = self.reward_head(self._take_reward_features())
        if target is not None:
            reward_loss = self._reward_loss(head_out, target.to(head_out.device))
            loss = loss + weight * reward_loss
            logs["reward_loss"] = reward_loss.item()
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
        reward = self._reward_from_head(self.reward_head(self._take_reward_features()))
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
    def label_episode(self, inputs: EpisodeInputs) -> dict[str, np.ndarray]:
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


# ---- per-frame targets for a whole dataset -----------------------------------------------------------
def build_progress_targets(config: RewACTConfig, dataset_meta: Any) -> np.ndarray:
    """The progress target of every frame of a dataset, (N,) float32 indexed by global frame `index`.

    Built once from the dataset metadata (episode lengths and index ranges), per `config.reward_targets`;
    frames without a target (parquet rows missing) are NaN and do not contribute to the loss.
    """
    if config.reward_targets == "parquet":
        return read_progress_parquet(
            Path(config.reward_targets_path), config.reward_target_column, int(dataset_meta.total_frames)
        )
    episodes = dataset_meta.episodes
    if episodes is None:
        raise RewardkitError(f"dataset {dataset_meta.root} has no episode metadata to build progress targets")
    columns = ["episode_index", "dataset_from_index", "dataset_to_index"]
    table = episodes.select_columns(columns).with_format("numpy")[:]
    total = max(int(dataset_meta.total_frames), int(table["dataset_to_index"].max(initial=0)))
    keyframes: dict[int, list[tuple[int, float]]] = {}
    failed = set(config.failed_episodes)
    if config.reward_targets == "keyframe":
        lengths = {int(e): int(b - a) for e, a, b in zip(*(table[c].tolist() for c in columns), strict=True)}
        read = read_keyframes(Path(config.reward_targets_path), fps=dataset_meta.fps, lengths=lengths)
        keyframes, failed = read.episodes, failed | set(read.failed)
    targets = np.full(total, np.nan, dtype=np.float32)
    for episode, start, stop in zip(*(table[c].tolist() for c in columns), strict=True):
        targets[start:stop] = progress_targets_lib.episode_progress(
            stop - start,
            keyframes=keyframes.get(episode),
            failed=episode in failed,
            start=config.reward_target_start,
            end=config.reward_target_end,
        )
    return targets


def read_progress_parquet(path: Path, column: str, total_frames: int) -> np.ndarray:
    """A (total_frames,) target table from a progress parquet (columns `index` and `column`); NaN elsewhere."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"progress parquet {path} not found")
    names = pq.read_schema(path).names
    for needed in ("index", column):
        if needed not in names:
            raise RewardkitError(f"progress parquet {path} has no column '{needed}' (columns: {names})")
    data = pq.read_table(path, columns=["index", column])
    index = data.column("index").to_numpy().astype(np.int64)
    values = data.column(column).to_numpy(zero_copy_only=False).astype(np.float32)
    if len(index) and (index.min() < 0 or index.max() >= total_frames):
        raise RewardkitError(
            f"progress parquet {path}: frame index {index.max()} outside the dataset's {total_frames}"
        )
    known = values[~np.isnan(values)]
    if len(known) and (known.min() < 0 or known.max() > 1):
        raise RewardkitError(f"progress parquet {path}: column '{column}' has values outside [0, 1]")
    targets = np.full(total_frames, np.nan, dtype=np.float32)
    targets[index] = values
    return targets
