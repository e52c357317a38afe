"""SARM (Stage-Aware Reward Modeling, arXiv 2509.25358) on cached frozen features.

Two transformers read a short window of frames, each frame a set of tokens (one per camera, the task text,
the robot state): the stage model classifies which stage every frame is in, the subtask model regresses
the within-stage progress tau, conditioned on a one-hot stage prior. Progress is
P_{k-1} + alpha_k * tau (temporal proportions alpha). A sparse head is always trained; a dense head in
the dense_only and dual annotation modes.

The layer layout and parameter names are those of lerobot's SARM (stream-major tokens, causal attention
over the flattened token sequence, a learned bias on the first frame), so lerobot checkpoints load as they
are (`load_lerobot_sarm`). What differs is around the transformer: any number of cameras, a causal window
by default, padded positions masked in attention *and* the loss, the stage loss weight applied, teacher
forcing drawn per sample, and whole episodes labelled in batched passes.

Batch keys (B samples, N cameras, L positions, D feature size, S state size):
    image_features (B, N, L, D) float16/32, text_features (B, D), state (B, L, S) optional (raw; the model
    normalises it with the config's state_mean/std), lengths (B,) valid positions (training), and per
    trained head `{scheme}_stage` (B, L) int64, `{scheme}_tau` (B, L) float32.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from rewardkit.errors import RewardkitError
from rewardkit.models.base import CheckpointError, EpisodeInputs, ModelInputs, RewardKitModel, load_weights
from rewardkit.models.sarm.configuration_sarm import StageAwareConfig
from rewardkit.models.sarm.sliding import SlidingHistory, SlidingTransformer


def window_indices(length: int, frames: np.ndarray, offsets: list[int] | np.ndarray) -> np.ndarray:
    """Frame indices of the windows of `frames` in an episode of `length` frames, clamped to the episode.

    frames: (F,) int; offsets: (W,) int. Returns (F, W) int64 in [0, length - 1].
    """
    frames = np.asarray(frames, dtype=np.int64)
    return np.clip(frames[:, None] + np.asarray(offsets, dtype=np.int64)[None, :], 0, length - 1)


class StreamTransformer(nn.Module):
    """One SARM transformer over per-frame tokens of several streams.

    Streams: one per camera, the task text, the state and (subtask model only) the stage prior. Tokens
    are laid out stream-major ((N + 2 [+ 1]) * T tokens) with causal attention over that order, as in
    lerobot's SARM, and fused per frame by a LayerNorm + Linear + ReLU before the heads.
    """

    def __init__(
        self,
        hidden_dim: int,
        image_dim: int,
        text_dim: int,
        state_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        num_cameras: int,
        head_sizes: dict[str, int],
        stage_prior: bool,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_cameras = num_cameras
        self.stage_prior = stage_prior
        self.lang_proj = nn.Linear(text_dim, hidden_dim)
        self.visual_proj = nn.Linear(image_dim, hidden_dim)
        self.state_proj = nn.Linear(state_dim, hidden_dim)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, 4 * hidden_dim, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.first_pos = nn.Parameter(torch.zeros(1, hidden_dim))
        streams = num_cameras + 2 + int(stage_prior)
        self.fusion_backbone = nn.Sequential(
            nn.LayerNorm(streams * hidden_dim), nn.Linear(streams * hidden_dim, hidden_dim), nn.ReLU()
        )
        self.heads = nn.ModuleDict({name: nn.Linear(hidden_dim, size) for name, size in head_sizes.items()})
        self._causal_masks: dict[tuple[int, str], Tensor] = {}

    def _causal_mask(self, size: int, device: torch.device) -> Tensor:
        key = (size, str(device))
        if key not in self._causal_masks:
            self._causal_masks[key] = torch.triu(torch.ones(size, size, dtype=torch.bool, device=device), 1)
        return self._causal_masks[key]

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        state: Tensor,
        padding: Tensor | None,
        scheme: str,
        prior: Tensor | None = None,
    ) -> Tensor:
        """Per-frame head outputs (B, T, head size); see `fused_windows`."""
        return self.head(self.fused_windows(image, text, state, padding, prior), scheme)

    def head(self, fused: Tensor, scheme: str) -> Tensor:
        """(..., H) fused per-frame features -> (..., head size)."""
        return self.heads[scheme](fused)

    def fused_windows(
        self, image: Tensor, text: Tensor, state: Tensor, padding: Tensor | None, prior: Tensor | None = None
    ) -> Tensor:
        """Per-frame fused features (B, T, H).

        image (B, N, T, D_img), text (B, D_txt), state (B, T, S), padding (B, T) bool True where padded
        (or None), prior (B, T, C) one-hot stage (subtask model).
        """
        batch, cameras, frames, _ = image.shape
        hidden = self.hidden_dim
        streams = [self.visual_proj(image)]
        streams.append(self.lang_proj(text)[:, None, None, :].expand(batch, 1, frames, hidden))
        streams.append(self.state_proj(state)[:, None])
        if self.stage_prior:
            assert prior is not None
            classes = prior.shape[-1]
            prior = prior.to(streams[0].dtype)
            if classes < hidden:
                prior = F.pad(prior, (0, hidden - classes))
            streams.append(prior[..., :hidden][:, None])
        tokens = torch.cat(streams, dim=1)  # (B, streams, T, H)
        first = torch.zeros_like(tokens[:1, :, :1])
        first[:, :cameras] = self.first_pos.to(tokens.dtype)
        tokens = tokens + F.pad(first, (0, 0, 0, frames - 1))
        num_streams = tokens.shape[1]
        tokens = tokens.reshape(batch, num_streams * frames, hidden)
        key_padding = None
        if padding is not None:
            key_padding = padding[:, None, :].expand(batch, num_streams, frames).reshape(batch, -1)
        encoded = self.transformer(
            tokens,
            mask=self._causal_mask(tokens.shape[1], tokens.device),
            src_key_padding_mask=key_padding,
            is_causal=True,
        )
        fused = encoded.reshape(batch, num_streams, frames, hidden).transpose(1, 2).reshape(batch, frames, -1)
        return self.fusion_backbone(fused)


class StageAwareRewardModel(RewardKitModel):
    """SARM reward model reading cached frozen features (see the module docstring for batch keys)."""

    config_class = StageAwareConfig
    name = "rewardkit_sarm"

    def __init__(self, config: StageAwareConfig, **kwargs: Any) -> None:
        super().__init__(config)
        self.config: StageAwareConfig = config
        # pinned now (fields may have been set after the config was made), and saved with the model
        config.architecture = config.resolved_architecture
        if config.architecture == "sliding":
            config.temporal_bands = config.layer_bands
        num_cameras = len(config.cameras) if config.cameras else 1
        common = dict(
            hidden_dim=config.hidden_dim,
            image_dim=config.image_dim,
            text_dim=config.text_dim,
            state_dim=config.max_state_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            dropout=config.dropout,
            num_cameras=num_cameras,
        )
        stage_sizes = {"sparse": config.stages("sparse"), "dense": config.stages("dense")}
        self.stage_model: StreamTransformer | SlidingTransformer
        self.subtask_model: StreamTransformer | SlidingTransformer
        if config.architecture == "sliding":
            del common["num_layers"]
            bands = list(config.temporal_bands or [])
            self.stage_model = SlidingTransformer(**common, bands=bands, head_sizes=stage_sizes)
            self.subtask_model = SlidingTransformer(
                **common, bands=bands, head_sizes={"sparse": 1, "dense": 1}, prior_classes=stage_sizes
            )
        else:
            self.stage_model = StreamTransformer(**common, head_sizes=stage_sizes, stage_prior=False)
            self.subtask_model = StreamTransformer(
                **common, head_sizes={"sparse": 1, "dense": 1}, stage_prior=True
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
        if state.shape[-1] >= size:
            return state[..., :size]
        return F.pad(state, (0, size - state.shape[-1]))

    def _inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        device = self._state_std.device
        image = batch["image_features"].to(device=device, dtype=torch.float32)
        if image.dim() == 3:  # (B, T, D): one camera
            image = image[:, None]
        text = batch["text_features"].to(device=device, dtype=torch.float32)
        state = self._prepare_state(batch.get("state"), image.shape[0], image.shape[2], device)
        return image, text, state

    def _predict(
        self, stage_logits: Callable[[str], Tensor], tau_logits: Callable[[str, Tensor], Tensor], scheme: str
    ) -> tuple[Tensor, Tensor]:
        """Progress (...) and stage probabilities (..., K) of one head: tau conditioned on the predicted
        stage. `stage_logits`/`tau_logits` as from `_head_functions`."""
        logits = stage_logits(scheme)
        stage = logits.argmax(-1)
        prior = F.one_hot(stage, logits.shape[-1]).float()
        tau = torch.sigmoid(tau_logits(scheme, prior).squeeze(-1).float())
        return self.normalized_progress(stage, tau, scheme), logits.float().softmax(-1)

    def _head_functions(
        self, image: Tensor, text: Tensor, state: Tensor, padding: Tensor | None
    ) -> tuple[Callable[[str], Tensor], Callable[[str, Tensor], Tensor]]:
        """(scheme -> stage logits, (scheme, one-hot prior) -> tau logits) over one batch of windows.

        Each transformer's trunk runs once for both heads, except lerobot's subtask transformer, which
        reads the prior as tokens and so runs per call."""
        stage_fused = self.stage_model.fused_windows(image, text, state, padding)
        if isinstance(self.subtask_model, SlidingTransformer):
            return (
                partial(self.stage_model.head, stage_fused),
                partial(self.subtask_model.head, self.subtask_model.fused_windows(image, text, state)),
            )
        subtask = self.subtask_model
        return (
            partial(self.stage_model.head, stage_fused),
            lambda scheme, prior: subtask.head(
                subtask.fused_windows(image, text, state, padding, prior), scheme
            ),
        )

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
        lengths = lengths.to(device)
        padding = torch.arange(frames, device=device)[None, :] >= lengths[:, None]  # (B, T)
        valid = ~padding
        use_padding = padding if bool(padding.any()) else None
        total = torch.zeros((), device=device)
        logs: dict[str, float] = {}
        current = self.config.current_position
        stage_logits, tau_logits = self._head_functions(image, text, state, use_padding)
        for scheme in self.schemes:
            stage = batch[f"{scheme}_stage"].to(device).long()
            tau = batch[f"{scheme}_tau"].to(device).float()
            logits_first = stage_logits(scheme)
            classes = logits_first.shape[-1]
            predicted = logits_first.argmax(-1)
            if self.training:
                teacher = torch.rand(batch_size, device=device) < self.config.teacher_forcing_ratio
                prior_stage = torch.where(teacher[:, None], stage, predicted)
            else:
                prior_stage = predicted
            prior = F.one_hot(prior_stage.clamp(0, classes - 1), classes).float()
            tau_pred = torch.sigmoid(tau_logits(scheme, prior).squeeze(-1).float())
            stage_loss = F.cross_entropy(logits_first[valid].float(), stage[valid].clamp(0, classes - 1))
            tau_loss = F.mse_loss(tau_pred[valid], tau[valid])
            total = total + self.config.stage_loss_weight * stage_loss + tau_loss
            with torch.no_grad():
                predicted_progress = self.normalized_progress(
                    predicted[:, current], tau_pred[:, current], scheme
                )
                target_progress = self.normalized_progress(stage[:, current], tau[:, current], scheme)
                mae = (predicted_progress - target_progress).abs().mean()
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
        image, text, state = self._inputs(batch)
        return self._predict(*self._head_functions(image, text, state, None), scheme)

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
    def label_episode(self, inputs: EpisodeInputs) -> dict[str, Any]:
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
        length = int(features.shape[1])
        frames = np.arange(length) if inputs.frame_indices is None else np.asarray(inputs.frame_indices)
        text = torch.as_tensor(np.asarray(inputs.text_features), dtype=torch.float32, device=device)
        state = None
        if self.config.use_state and inputs.state is not None:
            state = torch.as_tensor(np.asarray(inputs.state), dtype=torch.float32, device=device)
        if self.config.architecture == "sliding":
            return self._label_sliding(features, text, state, frames)
        windows = torch.as_tensor(window_indices(length, frames, self.config.window_offsets), device=device)
        current = self.config.current_position
        outputs: dict[str, list[np.ndarray]] = {}
        for begin in range(0, len(frames), self.config.label_batch_size):
            chunk = windows[begin : begin + self.config.label_batch_size]  # (b, W)
            batch = {
                "image_features": features[:, chunk].transpose(0, 1),  # (b, N, W, D)
                "text_features": text[None].expand(chunk.shape[0], -1),
            }
            if state is not None:
                batch["state"] = state[chunk]
            functions = self._head_functions(*self._inputs(batch), None)  # trunks once for both heads
            for scheme in self.schemes:
                suffix = "" if scheme == "sparse" else "_dense"
                progress, probs = self._predict(*functions, scheme)
                outputs.setdefault(f"progress{suffix}", []).append(progress[:, current].cpu().numpy())
                outputs.setdefault(f"stage_probs{suffix}", []).append(probs[:, current].cpu().numpy())
        return {key: np.concatenate(parts).astype(np.float32) for key, parts in outputs.items()}

    def _label_sliding(
        self, features: Tensor, text: Tensor, state: Tensor | None, frames: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Sliding architecture: one pass per frame-gap phase and model gives every frame's output (equal
        to each frame's own window computed alone, see `sarm/sliding.py`)."""
        assert isinstance(self.stage_model, SlidingTransformer)
        assert isinstance(self.subtask_model, SlidingTransformer)
        length = int(features.shape[1])
        until = int(frames.max()) + 1 if len(frames) else 0
        if until == 0:
            return {}
        state = self._prepare_state(None if state is None else state[None], 1, length, features.device)[0]
        gap = self.config.frame_gap
        stage_fused = self.stage_model.fused_episode(features, text, state, gap, until)
        subtask_fused = self.subtask_model.fused_episode(features, text, state, gap, until)
        select = torch.as_tensor(frames, device=features.device)
        out: dict[str, np.ndarray] = {}
        for scheme in self.schemes:
            suffix = "" if scheme == "sparse" else "_dense"
            progress, probs = self._predict(
                partial(self.stage_model.head, stage_fused[select]),
                partial(self.subtask_model.head, subtask_fused[select]),
                scheme,
            )
            out[f"progress{suffix}"] = progress.float().cpu().numpy().astype(np.float32)
            out[f"stage_probs{suffix}"] = probs.cpu().numpy().astype(np.float32)
        return out

    def online_stream(self) -> SlidingStream:
        """Sliding architecture: a per-step predictor that computes one new frame per step (see
        `SlidingStream`)."""
        if self.config.architecture != "sliding":
            raise RewardkitError(
                f"online_stream needs the sliding architecture, this model is '{self.config.architecture}'"
            )
        return SlidingStream(self)


class SlidingStream:
    """One observation at a time through a sliding SARM: `step` takes the new frame's features and returns
    its outputs per head, equal to labelling the recorded episode up to that frame (windows clamped to
    the first frame since `reset`). Each step runs one frame's tokens through every layer of both models,
    attending to each layer's cached keys and values of the frames 1..band gaps before it."""

    def __init__(self, model: StageAwareRewardModel) -> None:
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
        image = image.to(device=device, dtype=torch.float32)
        text = text.to(device=device, dtype=torch.float32)
        prepared = model._prepare_state(None if state is None else state[None, None], 1, 1, device)[0, 0]
        stage_fused = self.stage.step(model.stage_model.tokens(image, text, prepared))
        subtask_fused = self.subtask.step(model.subtask_model.tokens(image, text, prepared))
        out = {}
        for scheme in model.schemes:
            progress, probs = model._predict(
                partial(model.stage_model.head, stage_fused),
                partial(model.subtask_model.head, subtask_fused),
                scheme,
            )
            out[scheme] = (float(progress), probs.cpu().numpy())
        return out


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


def load_lerobot_sarm(folder: Path) -> StageAwareRewardModel:
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
    config = StageAwareConfig(
        **fields,
        window="centred",
        cameras=[image_key],
        encoder="clip",
        use_state=True,
        device="cpu",
        state_stats_from_dataset=True,
    )
    model = StageAwareRewardModel(config)
    load_weights(model, folder / "model.safetensors", strict=True)
    return model.eval()
