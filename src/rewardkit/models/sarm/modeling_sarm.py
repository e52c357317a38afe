"""SARM (Stage-Aware Reward Modeling, arXiv 2509.25358) on cached frozen features.

Two transformers read a short window of frames, each frame a set of tokens (one per camera, the task text,
the robot state): the stage model classifies which stage every frame is in, the subtask model regresses
the within-stage progress tau, conditioned on a one-hot stage prior. Progress is
P_{k-1} + alpha_k * tau (temporal proportions alpha). A sparse head is always trained; a dense head in
the dense_only and dual annotation modes.

One forward pass, whatever the architecture:

    stage logits = stage_model(windows)                      scheme -> (B, T, K)
    prior        = one-hot(true stage | predicted stage)     teacher forcing in training
    tau logits   = subtask_model(windows, prior)             scheme -> (B, T, 1)
    progress     = P_{k-1} + alpha_k * sigmoid(tau)

The two transformers are of one class, chosen once when the model is built from `config.architecture`:

- "sliding" (`sliding.py`, the causal default): frame-major tokens, attention banded over frames, so one
  pass per frame-gap phase labels a whole episode and an online step computes one new frame
  (`SlidingStream`);
- "lerobot" (`lerobot_layout.py`): lerobot's layer layout and parameter names, so lerobot checkpoints
  load as they are (`load_lerobot_sarm`); every window is computed on its own.

Both take windows through the same `forward(image, text, state, padding, schemes, priors)`. What differs
from lerobot's SARM is around the transformers: any number of cameras, a causal window by default, padded
positions masked in attention *and* the loss, the stage loss weight applied, teacher forcing drawn per
sample, and whole episodes labelled in batched passes.

Batch keys (B samples, N cameras, L positions, D feature size, S state size):
    image_features (B, N, L, D) float16/32, text_features (B, D), state (B, L, S) optional (raw; the model
    normalises it with the config's state_mean/std), lengths (B,) valid positions (training), and per
    trained head `{scheme}_stage` (B, L) int64, `{scheme}_tau` (B, L) float32.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from rewardkit.errors import RewardkitError
from rewardkit.models.base import (
    CheckpointError,
    EpisodeInputs,
    FrameOutputs,
    ModelInputs,
    RewardKitModel,
    load_config,
    load_weights,
    read_config_dict,
    resolve_checkpoint,
)
from rewardkit.models.sarm.configuration_sarm import SARMConfig
from rewardkit.models.sarm.lerobot_layout import LerobotTransformer
from rewardkit.models.sarm.sliding import SlidingHistory, SlidingTransformer

if TYPE_CHECKING:
    from rewardkit.models.sarm.online_sarm import SarmOnline


def window_indices(length: int, frames: np.ndarray, offsets: list[int] | np.ndarray) -> np.ndarray:
    """Frame indices of the windows of `frames` in an episode of `length` frames, clamped to the episode.

    frames: (F,) int; offsets: (W,) int. Returns (F, W) int64 in [0, length - 1].
    """
    frames = np.asarray(frames, dtype=np.int64)
    return np.clip(frames[:, None] + np.asarray(offsets, dtype=np.int64)[None, :], 0, length - 1)


def saved_config(folder: Path, config: Any = None) -> Any:
    """The config a checkpoint folder loads with: `config` (default: its config.json), where a sliding
    checkpoint whose config.json predates `frame_tokens` (no key) keeps the layout it was trained with,
    "separate", whatever the default for new models is. `rewardkit train --resume` continues with it."""
    if config is None:
        config = load_config(folder)
    if (
        isinstance(config, SARMConfig)
        and config.frame_tokens is None
        and config.resolved_architecture == "sliding"
        and "frame_tokens" not in read_config_dict(folder)
    ):
        config = replace(config, frame_tokens="separate")
    return config


class SARMRewardModel(RewardKitModel):
    """SARM reward model reading cached frozen features (see the module docstring for batch keys).

    The config given is not changed: the model keeps a copy with the architecture and the temporal bands
    resolved (`self.config`), which is what it saves.
    """

    config_class = SARMConfig
    name = "rewardkit_sarm"

    def __init__(self, config: SARMConfig, **kwargs: Any) -> None:
        # pinned now (fields may have been set after the config was made), and saved with the model
        config = config.resolved()
        super().__init__(config)
        self.config: SARMConfig = config
        transformer = SlidingTransformer if config.architecture == "sliding" else LerobotTransformer
        stage_sizes = {"sparse": config.stages("sparse"), "dense": config.stages("dense")}
        self.stage_model = transformer.from_config(config, head_sizes=stage_sizes)
        self.subtask_model = transformer.from_config(
            config, head_sizes={"sparse": 1, "dense": 1}, prior_classes=stage_sizes
        )
        for scheme in ("sparse", "dense"):
            proportions = torch.tensor(config.proportions(scheme), dtype=torch.float64)
            proportions = proportions / proportions.sum()
            starts = torch.cat([torch.zeros(1, dtype=torch.float64), proportions.cumsum(0)[:-1]])
            self.register_buffer(f"_{scheme}_starts", starts.float(), persistent=False)
            self.register_buffer(f"_{scheme}_widths", proportions.float(), persistent=False)
        state_mean = torch.tensor(config.state_mean or [], dtype=torch.float32)
        state_std = torch.tensor(config.state_std or [], dtype=torch.float32).clamp_min(1e-6)
        self.register_buffer("_state_mean", state_mean, persistent=False)
        self.register_buffer("_state_std", state_std, persistent=False)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | Path,
        *,
        config: Any = None,
        revision: str | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> SARMRewardModel:
        """Load a checkpoint strictly (`RewardKitModel.from_pretrained`), with `saved_config`'s rule."""
        folder = resolve_checkpoint(pretrained_name_or_path, revision=revision)
        config = saved_config(folder, config)
        return super().from_pretrained(folder, config=config, strict=strict, **kwargs)

    def prepare_for_dataset(self, dataset: Any) -> None:
        """Before labelling `dataset` (a `RewardDataset`): with `state_stats_from_dataset` and no state
        statistics of its own, normalise state with the dataset's `observation.state` mean/std."""
        if not (self.config.state_stats_from_dataset and self.config.use_state) or self.config.state_mean:
            return
        stats = (getattr(dataset.meta, "stats", None) or {}).get("observation.state")
        if not stats or "mean" not in stats or "std" not in stats:
            raise RewardkitError(
                f"dataset {dataset.root} has no observation.state mean/std in meta/stats.json, which this "
                "lerobot SARM checkpoint needs to normalise the state (lerobot's preprocessor does the same)"
            )
        device = self._state_std.device
        self._state_mean = torch.as_tensor(
            np.asarray(stats["mean"]), dtype=torch.float32, device=device
        ).flatten()
        self._state_std = (
            torch.as_tensor(np.asarray(stats["std"]), dtype=torch.float32, device=device)
            .flatten()
            .clamp_min(1e-6)
        )

    # ---- pieces --------------------------------------------------------------------------------
    @property
    def schemes(self) -> list[str]:
        """Heads trained and reported: ["sparse"] or ["sparse", "dense"]."""
        return ["sparse", "dense"] if self.config.uses_dual_heads else ["sparse"]

    def normalized_progress(self, stage: Tensor, tau: Tensor, scheme: str = "sparse") -> Tensor:
        """P_{k-1} + alpha_k * tau (SARM formula 2); stage (...) int64, tau (...) float -> (...) in [0, 1]."""
        starts = getattr(self, f"_{scheme}_starts")
        widths = getattr(self, f"_{scheme}_widths")
        stage = stage.clamp(0, starts.shape[0] - 1)
        return (starts[stage] + widths[stage] * tau.float()).clamp(0.0, 1.0)

    def _prepare_state(self, state: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
        """(B, T, S) raw state -> (B, T, max_state_dim) normalised, zero-padded (zeros when unused)."""
        size = self.config.max_state_dim
        if state is None or not self.config.use_state:
            return torch.zeros(batch, frames, size, device=device)
        state = state.to(device=device, dtype=torch.float32)
        if self._state_mean.numel():
            dims = min(state.shape[-1], self._state_mean.numel())
            state = state.clone()
            state[..., :dims] = (state[..., :dims] - self._state_mean[:dims]) / self._state_std[:dims]
        if self.training and self.config.state_dropout > 0:
            # modality dropout: whole windows without the state, as use_state=False feeds them
            keep = torch.rand(state.shape[0], 1, 1, device=device) >= self.config.state_dropout
            state = state * keep
        if state.shape[-1] >= size:
            return state[..., :size]
        return F.pad(state, (0, size - state.shape[-1]))

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the transformers' weights, which their inputs take (float32, or bfloat16 for a
        bf16 copy of the weights)."""
        return self.stage_model.visual_proj.weight.dtype

    def _inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """image (B, N, T, D), text (B, D), state (B, T, max_state_dim) prepared, on the device, in
        `compute_dtype`."""
        device = self._state_std.device
        dtype = self.compute_dtype
        image = batch["image_features"].to(device=device, dtype=dtype)
        if image.dim() == 3:  # (B, T, D): one camera
            image = image[:, None]
        text = batch["text_features"].to(device=device, dtype=dtype)
        state = self._prepare_state(batch.get("state"), image.shape[0], image.shape[2], device).to(dtype)
        return image, text, state

    @staticmethod
    def _one_hot(stage: Tensor, classes: int) -> Tensor:
        """The stage prior the subtask model reads: (...) int64 -> (...) one-hot float."""
        return F.one_hot(stage.clamp(0, classes - 1), classes).float()

    def _progress(
        self, stage_logits: dict[str, Tensor], tau_logits: dict[str, Tensor]
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """scheme -> (progress (...), stage probabilities (..., K)) from the heads' logits, the tau
        logits conditioned on the predicted stage."""
        out = {}
        for scheme, logits in stage_logits.items():
            tau = torch.sigmoid(tau_logits[scheme].squeeze(-1).float())
            progress = self.normalized_progress(logits.argmax(-1), tau, scheme)
            out[scheme] = (progress, logits.float().softmax(-1))
        return out

    def _predict_windows(
        self, image: Tensor, text: Tensor, state: Tensor, schemes: list[str]
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """scheme -> (progress (B, T), stage probabilities (B, T, K)) of a batch of windows (inference)."""
        stage_logits = self.stage_model(image, text, state, None, schemes)
        priors = {s: self._one_hot(logits.argmax(-1), logits.shape[-1]) for s, logits in stage_logits.items()}
        tau_logits = self.subtask_model(image, text, state, None, schemes, priors)
        return self._progress(stage_logits, tau_logits)

    # ---- training ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Loss over the valid positions of every sequence, and logs (per-head losses, progress MAE).

        In training mode the tau model is conditioned, per sample, on the true stage with probability
        `teacher_forcing_ratio`, else on the predicted one; in eval mode always on the predicted one.
        """
        image, text, state = self._inputs(batch)
        batch_size, _, frames, _ = image.shape
        device = image.device
        lengths = batch.get("lengths")
        if lengths is None:
            lengths = torch.full((batch_size,), frames, device=device)
        padding = torch.arange(frames, device=device)[None, :] >= lengths.to(device)[:, None]  # (B, T)
        valid = ~padding
        attention_padding = padding if bool(padding.any()) else None

        stage_logits = self.stage_model(image, text, state, attention_padding, self.schemes)
        true_stage, true_tau, priors = {}, {}, {}
        for scheme, logits in stage_logits.items():
            classes = logits.shape[-1]
            true_stage[scheme] = batch[f"{scheme}_stage"].to(device).long().clamp(0, classes - 1)
            true_tau[scheme] = batch[f"{scheme}_tau"].to(device).float()
            prior_stage = logits.argmax(-1)
            if self.training:  # teacher forcing, drawn per sample
                teacher = torch.rand(batch_size, device=device) < self.config.teacher_forcing_ratio
                prior_stage = torch.where(teacher[:, None], true_stage[scheme], prior_stage)
            priors[scheme] = self._one_hot(prior_stage, classes)
        tau_logits = self.subtask_model(image, text, state, attention_padding, self.schemes, priors)

        total = torch.zeros((), device=device)
        logs: dict[str, float] = {}
        current = self.config.current_position
        for scheme, logits in stage_logits.items():
            tau = torch.sigmoid(tau_logits[scheme].squeeze(-1).float())
            stage_loss = F.cross_entropy(logits[valid].float(), true_stage[scheme][valid])
            tau_loss = F.mse_loss(tau[valid], true_tau[scheme][valid])
            total = total + self.config.stage_loss_weight * stage_loss + tau_loss
            with torch.no_grad():
                predicted = self.normalized_progress(logits[:, current].argmax(-1), tau[:, current], scheme)
                target = self.normalized_progress(
                    true_stage[scheme][:, current], true_tau[scheme][:, current], scheme
                )
                mae = (predicted - target).abs().mean()
            logs[f"{scheme}_stage_loss"] = float(stage_loss.detach())
            logs[f"{scheme}_tau_loss"] = float(tau_loss.detach())
            logs["progress_mae" if scheme == "sparse" else "progress_dense_mae"] = float(mae)
        logs["loss"] = float(total.detach())
        return total, logs

    # ---- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_scheme(self, batch: dict[str, Tensor], scheme: str = "sparse") -> tuple[Tensor, Tensor]:
        """Progress (B, W) and stage probabilities (B, W, K) at every window position for one head.

        batch: image_features (B, N, W, D), text_features (B, D), state (B, W, S) optional.
        """
        return self._predict_windows(*self._inputs(batch), [scheme])[scheme]

    @torch.no_grad()
    def predict_progress(self, batch: dict[str, Tensor]) -> Tensor:
        """Sparse-head progress of each window's scored frame (last frame if causal, middle if centred).

        batch: image_features (B, N, W, D) with W = n_obs_steps + 1, text_features (B, D), state (B, W, S)
        optional. Returns (B,) in [0, 1].
        """
        progress, _ = self.predict_scheme(batch, "sparse")
        return progress[:, self.config.current_position]

    def required_inputs(self) -> ModelInputs:
        """Cached features of the config's cameras for its encoder, and the state when used."""
        return ModelInputs(
            cameras=list(self.config.cameras or []), encoder=self.config.encoder, state=self.config.use_state
        )

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Every frame's progress for one episode, in batched passes.

        Sliding architecture: one pass per frame-gap phase and model computes every frame once (frames up
        to the last requested one), equal to each frame's window computed alone (`sarm/sliding.py`).
        lerobot architecture: the windows of all requested frames (window of frame t = frames
        t + window_offsets, clamped to the episode) are gathered from the episode's features with one
        fancy index and run through both transformers `label_batch_size` windows at a time, so each frame's
        output is exactly the per-window computation of `predict_progress` (no approximation).

        Returns "progress" (F,), "stage_probs" (F, K) and, with a dense head, "progress_dense" (F,) and
        "stage_probs_dense" (F, K_dense); F = T, or len(inputs.frame_indices) when given.
        """
        if inputs.image_features is None or inputs.text_features is None:
            raise RewardkitError(
                f"episode {inputs.episode_index}: SARM needs cached image and text features "
                f"(encoder '{self.config.encoder}')"
            )
        cameras = self.config.cameras or list(inputs.image_features)
        missing = [c for c in cameras if c not in inputs.image_features]
        if missing:
            raise RewardkitError(
                f"episode {inputs.episode_index}: no cached features for camera(s) {missing}"
            )
        device = self._state_std.device
        features = torch.stack(
            [torch.from_numpy(np.array(inputs.image_features[c], dtype=np.float32)) for c in cameras]
        ).to(device=device, dtype=torch.float32)  # (N, T, D)
        frames = (
            np.arange(features.shape[1]) if inputs.frame_indices is None else np.asarray(inputs.frame_indices)
        )
        text = torch.as_tensor(np.asarray(inputs.text_features), dtype=torch.float32, device=device)
        state = None
        if self.config.use_state and inputs.state is not None:
            state = torch.as_tensor(np.asarray(inputs.state), dtype=torch.float32, device=device)
        if self.config.architecture == "sliding":
            outputs = self._label_sliding(features, text, state, frames)
        else:
            outputs = self._label_windows(features, text, state, frames)
        labels = {}
        for scheme, (progress, probs) in outputs.items():
            suffix = "" if scheme == "sparse" else "_dense"
            labels[f"progress{suffix}"] = progress.float().cpu().numpy().astype(np.float32)
            labels[f"stage_probs{suffix}"] = probs.float().cpu().numpy()
        return labels

    def _label_windows(
        self, features: Tensor, text: Tensor, state: Tensor | None, frames: np.ndarray
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Any architecture: each requested frame's own window, `label_batch_size` windows per pass.
        features (N, T, D), text (D,), state (T, S) or None -> scheme -> (progress (F,), probs (F, K))."""
        windows = window_indices(features.shape[1], frames, self.config.window_offsets)
        windows = torch.as_tensor(windows, device=features.device)  # (F, W)
        current = self.config.current_position
        parts: dict[str, list[tuple[Tensor, Tensor]]] = {scheme: [] for scheme in self.schemes}
        for begin in range(0, len(frames), self.config.label_batch_size):
            chunk = windows[begin : begin + self.config.label_batch_size]  # (b, W)
            batch = {
                "image_features": features[:, chunk].transpose(0, 1),  # (b, N, W, D)
                "text_features": text[None].expand(chunk.shape[0], -1),
            }
            if state is not None:
                batch["state"] = state[chunk]
            for scheme, (progress, probs) in self._predict_windows(
                *self._inputs(batch), self.schemes
            ).items():
                parts[scheme].append((progress[:, current], probs[:, current]))
        return {
            scheme: (torch.cat([p for p, _ in chunks]), torch.cat([q for _, q in chunks]))
            for scheme, chunks in parts.items()
            if chunks
        }

    def _label_sliding(
        self, features: Tensor, text: Tensor, state: Tensor | None, frames: np.ndarray
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Sliding architecture: one pass per frame-gap phase and model gives every frame's output (equal
        to each frame's own window computed alone, see `sarm/sliding.py`); arguments as `_label_windows`."""
        length = int(features.shape[1])
        until = int(frames.max()) + 1 if len(frames) else 0
        if until == 0:
            return {}
        state = self._prepare_state(None if state is None else state[None], 1, length, features.device)[0]
        dtype = self.compute_dtype  # bf16 on a bf16 copy of the weights (labelling without autocast)
        features, text, state = features.to(dtype), text.to(dtype), state.to(dtype)
        gap = self.config.frame_gap
        select = torch.as_tensor(frames, device=features.device)
        chunk = self.config.label_chunk_frames
        stage_fused = self.stage_model.fused_episode(features, text, state, gap, until, chunk)[select]
        subtask_fused = self.subtask_model.fused_episode(features, text, state, gap, until, chunk)[select]
        return self._predict_fused(stage_fused, subtask_fused)

    def _predict_fused(self, stage_fused: Tensor, subtask_fused: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """Sliding architecture: scheme -> (progress (...), probs (..., K)) from both models' fused
        per-frame features (..., H)."""
        stage_logits = self.stage_model.outputs(stage_fused, self.schemes)
        priors = {s: self._one_hot(logits.argmax(-1), logits.shape[-1]) for s, logits in stage_logits.items()}
        return self._progress(stage_logits, self.subtask_model.outputs(subtask_fused, self.schemes, priors))

    def online(
        self, task: str | None = None, encoder: Any = None, dtype: torch.dtype | str | None = None
    ) -> SarmOnline:
        """This model one observation at a time (causal window only; see `sarm/online_sarm.py`).
        `RewardMonitor(model, dtype=torch.bfloat16)` passes its extra arguments here.

        Args:
            task: the task text (default: `observation["task"]` at each step).
            encoder: the frozen encoder (default: built from `config.encoder`); pass one to share it.
            dtype: step on a copy of the weights in this dtype (e.g. torch.bfloat16 or "bfloat16");
                None: this model's own.
        """
        from rewardkit.models.sarm.online_sarm import SarmOnline

        return SarmOnline(self, task=task, encoder=encoder, dtype=dtype)

    def online_stream(self, dtype: torch.dtype | None = None) -> SlidingStream:
        """Sliding architecture: a per-step predictor that computes one new frame per step (see
        `SlidingStream`). dtype: run the step on a copy of the weights in this dtype (e.g. bfloat16:
        half the weights read per step, which bounds the default-size model's step); None: as they are."""
        if self.config.architecture != "sliding":
            raise RewardkitError(
                f"online_stream needs the sliding architecture, this model is '{self.config.architecture}'"
            )
        model = self
        if dtype is not None and dtype != self.compute_dtype:
            from rewardkit.precision import low_precision_copy

            model = low_precision_copy(self, dtype).eval()
        return SlidingStream(model)


class SlidingStream:
    """One observation at a time through a sliding SARM: `step` takes the new frame's features and returns
    its outputs per head, equal to labelling the recorded episode up to that frame (windows clamped to
    the first frame since `reset`). Each step runs one frame's tokens through every layer of both models,
    attending to each layer's cached keys and values of the frames 1..band gaps before it."""

    def __init__(self, model: SARMRewardModel) -> None:
        assert isinstance(model.stage_model, SlidingTransformer)
        assert isinstance(model.subtask_model, SlidingTransformer)
        self.model = model
        self.stage = SlidingHistory(model.stage_model, model.config.frame_gap)
        self.subtask = SlidingHistory(model.subtask_model, model.config.frame_gap)

    def reset(self) -> None:
        self.stage.reset()
        self.subtask.reset()

    @property
    def count(self) -> int:
        """Frames seen since the last reset."""
        return self.stage.count

    @torch.no_grad()
    def step(self, image: Tensor, text: Tensor, state: Tensor | None) -> dict[str, tuple[float, np.ndarray]]:
        """image (N, D) features of each camera, text (D,), state (S,) raw or None ->
        scheme -> (progress, stage probabilities (K,))."""
        model = self.model
        device = model._state_std.device
        dtype = model.compute_dtype
        image = image.to(device=device, dtype=dtype)
        text = text.to(device=device, dtype=dtype)
        prepared = model._prepare_state(None if state is None else state[None, None], 1, 1, device)[0, 0]
        prepared = prepared.to(dtype)
        stage_fused = self.stage.step(model.stage_model.tokens(image, text, prepared))
        subtask_fused = self.subtask.step(model.subtask_model.tokens(image, text, prepared))
        return {
            scheme: (float(progress), probs.cpu().numpy())
            for scheme, (progress, probs) in model._predict_fused(stage_fused, subtask_fused).items()
        }


# ---- lerobot checkpoints -------------------------------------------------------------------------
_LEROBOT_FIELDS = (
    "annotation_mode",
    "n_obs_steps",
    "frame_gap",
    "max_rewind_steps",
    "image_dim",
    "text_dim",
    "hidden_dim",
    "num_heads",
    "num_layers",
    "max_state_dim",
    "dropout",
    "stage_loss_weight",
    "rewind_probability",
    "language_perturbation_probability",
    "num_sparse_stages",
    "sparse_subtask_names",
    "sparse_temporal_proportions",
    "num_dense_stages",
    "dense_subtask_names",
    "dense_temporal_proportions",
)


def load_lerobot_sarm(folder: Path) -> SARMRewardModel:
    """Open a lerobot SARM checkpoint (config.json of type "sarm" + model.safetensors) as our model.

    The weights load unchanged; the window is centred, as lerobot's model was trained. lerobot normalises
    state in its preprocessor with the labelled dataset's stats; `state_stats_from_dataset` makes the
    labeller do the same (`prepare_for_dataset`).
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    try:
        data = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read lerobot SARM config {config_path}: {e}") from e
    fields = {key: data[key] for key in _LEROBOT_FIELDS if key in data and data[key] is not None}
    image_key = data.get("image_key") or "observation.images.top"
    config = SARMConfig(
        **fields,
        window="centred",
        cameras=[image_key],
        encoder="clip",
        use_state=True,
        device="cpu",
        state_stats_from_dataset=True,
    )
    model = SARMRewardModel(config)
    load_weights(model, folder / "model.safetensors", strict=True)
    return model.eval()
