"""Configuration of SARM (Stage-Aware Reward Modeling, arXiv 2509.25358) on cached frozen features."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lerobot.configs.rewards import RewardModelConfig
from lerobot.optim import AdamWConfig, CosineDecayWithWarmupSchedulerConfig

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardKitConfig
from rewardkit.models.sarm.sliding import FRAME_TOKENS, spread_bands

ANNOTATION_MODES = ("single_stage", "dense_only", "dual")
WINDOWS = ("causal", "centred")
ARCHITECTURES = ("sliding", "lerobot")
# The frame layout a NEW sliding model gets when `frame_tokens` is not given. A checkpoint saved before the
# field existed has no key and keeps its layout, "separate" (`SARMRewardModel.from_pretrained`).
# "fused": about half the model step of "separate" (0.29x vs 0.57x lerobot's at the default size,
# bench_sarm_train.py), with failure AUROC as good or better on bench_quality.py (small size); at the
# demo's width 64 its MAE measured worse, so the demo pins "separate" (see README, SARM).
DEFAULT_FRAME_TOKENS = "fused"
# The fps at which a frame gap in seconds is taken when no dataset is known (lerobot's SARM: 30 frames
# apart, i.e. 1 s at 30 fps).
DEFAULT_FPS = 30


@RewardModelConfig.register_subclass("rewardkit_sarm")
@dataclass
class SARMConfig(RewardKitConfig):
    """SARM: a stage classifier and a within-stage progress (tau) regressor over frozen features.

    Defaults follow lerobot's SARM (hidden 768, 8 layers, 12 heads, 8 observation steps 30 frames apart,
    rewind augmentation, language perturbation). The model reads cached image features of every camera,
    the task's cached text features and the robot state; it never sees pixels.

    Args:
        annotation_mode: "single_stage" (no annotations: one stage, linear progress), "dense_only" (dense
            subtask annotations; the sparse head is one "task" stage) or "dual" (sparse and dense
            annotations, both heads trained).
        window: "causal" (default): the window ends at the frame being scored (history only, so the reward
            can be computed online); "centred": the frame sits in the middle of the window (lerobot's
            choice, needed to run lerobot checkpoints).
        architecture: "sliding" (default with a causal window): frame-major tokens, attention banded over
            frames with a learned distance bias and no absolute position, so one pass per frame-gap phase
            labels a whole episode and an online step computes one new frame (see `sarm/sliding.py`);
            "lerobot" (default with a centred window): lerobot's layer layout (stream-major tokens, causal
            attention over the window's flattened tokens, see `sarm/lerobot_layout.py`), which lerobot
            checkpoints need.
        temporal_bands: Sliding architecture: how many frame gaps back each layer attends (one per layer,
            adding up to n_obs_steps; default: spread evenly, the remainder on the top layers).
        frame_tokens: Sliding architecture: the tokens of a frame. "separate": one per camera, the task
            text and the state (each with a learned type embedding); "fused": ONE token per frame (a
            linear layer over the cameras' features concatenated, plus the text and state projections and
            one learned embedding), a third of the per-token compute with one camera. None: the default
            for new models (DEFAULT_FRAME_TOKENS), pinned when the model is built; a checkpoint saved
            without the key is "separate".
        n_obs_steps: Frames in the window besides the scored one (window = n_obs_steps + 1 frames).
        frame_gap: Frames between consecutive window frames. None (default): `frame_gap_seconds` at the
            dataset's fps, resolved when training starts; an explicit value wins. Checkpoints hold the
            resolved frame count.
        frame_gap_seconds: The frame gap in seconds when `frame_gap` is not given (default 1.0 s:
            lerobot's 30 frames at 30 fps; datasets differ in fps). Without a dataset (a model built
            directly), it is taken at 30 fps.
        max_rewind_steps: Most frames appended by rewind augmentation (must be < n_obs_steps).
        rewind_probability: Chance, drawn per sample, that a training window is followed by rewound frames.
        language_perturbation_probability: Chance, drawn per sample, that the task text is replaced by an
            unrelated text whose targets are 0 (the model learns that wrong instructions make no progress).
        teacher_forcing_ratio: Chance, per sample, that the tau regressor is conditioned on the true stage
            rather than the predicted one while training (the paper's 75/25).
        cameras: Camera keys read, in order (None: every camera of the dataset, resolved at training).
        encoder: Frozen-encoder spec whose cached features the model reads (e.g. "clip").
        use_state: Read `observation.state` (normalised with `state_mean`/`state_std`); False feeds zeros.
        state_dropout: Training only: the chance, per sample, that its whole window's state is replaced by
            zeros (what `use_state=False` feeds), so the progress must also be read from the images. A model
            that always has the robot state learns from it alone where the state and the time say enough
            (the hand moves the same whether or not the gripper holds the object) and misses failures only
            the images show. Labelling always reads the state.
        state_mean: Per-dimension state mean (set from the training episodes).
        state_std: Per-dimension state standard deviation (set from the training episodes).
        state_stats_from_dataset: When `state_mean`/`state_std` are not set, take them from the labelled
            dataset's meta/stats.json (`observation.state` mean/std) before labelling, as lerobot's SARM
            pipeline does (its normaliser lives in the preprocessor, not the model). Set for lerobot
            checkpoints.
        image_dim: Image feature size (set from the cache).
        text_dim: Text feature size (set from the cache).
        hidden_dim: Transformer width.
        num_heads: Attention heads.
        num_layers: Transformer layers (each of the two transformers).
        max_state_dim: State vectors are zero-padded (or cut) to this size.
        dropout: Dropout in the transformers.
        stage_loss_weight: Weight of the stage cross-entropy against the tau regression loss.
        train_on_failures: Failed episodes train the model with failure-aware targets (else they are
            left out of training).
        num_sparse_stages: Number of sparse stages (1 in single_stage and dense_only modes).
        sparse_subtask_names: Sparse stage names, in order.
        sparse_temporal_proportions: Mean fraction of an episode each sparse stage takes (sum 1).
        num_dense_stages: Number of dense stages (dense_only / dual).
        dense_subtask_names: Dense stage names, in order.
        dense_temporal_proportions: Mean fraction of an episode each dense stage takes (sum 1).
        label_batch_size: Windows per forward pass in `label_episode` (lerobot architecture; the sliding one
            labels an episode in one pass per frame-gap phase).
        label_chunk_frames: Sliding architecture: most frames per forward pass in `label_episode` (the
            frame-gap phases advance a chunk of positions at a time, carrying each layer's keys and values;
            same outputs). It bounds the model's activations whatever the episode length: about 0.3 GB
            at the default size with 4 cameras for 256 frames (roughly linear in frames, cameras and width).
    """

    annotation_mode: str = "single_stage"
    window: str = "causal"
    architecture: str | None = None
    temporal_bands: list[int] | None = None
    frame_tokens: str | None = None
    n_obs_steps: int = 8
    frame_gap: int | None = None
    frame_gap_seconds: float | None = 1.0
    max_rewind_steps: int = 4
    rewind_probability: float = 0.8
    language_perturbation_probability: float = 0.2
    teacher_forcing_ratio: float = 0.75
    cameras: list[str] | None = None
    encoder: str = "clip"
    use_state: bool = True
    state_dropout: float = 0.0
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    state_stats_from_dataset: bool = False
    image_dim: int = 512
    text_dim: int = 512
    hidden_dim: int = 768
    num_heads: int = 12
    num_layers: int = 8
    max_state_dim: int = 32
    dropout: float = 0.1
    stage_loss_weight: float = 1.0
    train_on_failures: bool = True
    num_sparse_stages: int = 1
    sparse_subtask_names: list[str] | None = None
    sparse_temporal_proportions: list[float] | None = None
    num_dense_stages: int | None = None
    dense_subtask_names: list[str] | None = None
    dense_temporal_proportions: list[float] | None = None
    label_batch_size: int = 256
    label_chunk_frames: int = 256
    input_features: dict = field(default_factory=dict)
    output_features: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.annotation_mode not in ANNOTATION_MODES:
            raise RewardkitError(
                f"annotation_mode must be one of {ANNOTATION_MODES}, got '{self.annotation_mode}'"
            )
        if self.window not in WINDOWS:
            raise RewardkitError(f"window must be one of {WINDOWS}, got '{self.window}'")
        if self.n_obs_steps < 1 or (self.frame_gap is not None and self.frame_gap < 1):
            raise RewardkitError(
                f"need n_obs_steps >= 1 and frame_gap >= 1, got {self.n_obs_steps}, {self.frame_gap}"
            )
        if self.frame_gap_seconds is not None and self.frame_gap_seconds <= 0:
            raise RewardkitError(f"frame_gap_seconds must be > 0, got {self.frame_gap_seconds}")
        if self.frame_tokens is not None:
            if self.frame_tokens not in FRAME_TOKENS:
                raise RewardkitError(f"frame_tokens must be one of {FRAME_TOKENS}, got '{self.frame_tokens}'")
            if self.resolved_architecture != "sliding":
                raise RewardkitError(
                    "frame_tokens applies to the sliding architecture only (lerobot's layout has its own "
                    "tokens): leave it unset with architecture='lerobot' or window='centred'"
                )
        if self.architecture is not None or self.temporal_bands is not None:
            # early errors for explicit values; resolved for good when a model is built from the config
            _ = self.resolved_architecture
            if self.temporal_bands is not None:
                _ = self.layer_bands
        if self.window == "centred" and self.n_obs_steps % 2:
            raise RewardkitError(f"a centred window needs an even n_obs_steps, got {self.n_obs_steps}")
        if not 0 <= self.max_rewind_steps < self.n_obs_steps:
            raise RewardkitError(
                f"max_rewind_steps ({self.max_rewind_steps}) must be in [0, n_obs_steps={self.n_obs_steps})"
            )
        if not 0.0 <= self.state_dropout < 1.0:
            raise RewardkitError(f"state_dropout must be in [0, 1), got {self.state_dropout}")
        if self.label_chunk_frames < 1:
            raise RewardkitError(f"label_chunk_frames must be >= 1, got {self.label_chunk_frames}")
        if self.hidden_dim % self.num_heads:
            raise RewardkitError(
                f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.annotation_mode in ("single_stage", "dense_only"):
            self.num_sparse_stages = 1
            self.sparse_subtask_names = ["task"]
            self.sparse_temporal_proportions = [1.0]
        if self.annotation_mode == "single_stage":
            self.num_dense_stages = None
            self.dense_subtask_names = None
            self.dense_temporal_proportions = None
        for scheme in ("sparse", "dense"):
            names = getattr(self, f"{scheme}_subtask_names")
            proportions = getattr(self, f"{scheme}_temporal_proportions")
            if names is not None:
                setattr(self, f"num_{scheme}_stages", len(names))
            if names is not None and proportions is not None and len(names) != len(proportions):
                raise RewardkitError(
                    f"{scheme}: {len(names)} subtask names but {len(proportions)} temporal proportions"
                )

    # ---- derived -------------------------------------------------------------------------------
    @property
    def resolved_architecture(self) -> str:
        """`architecture`, or the default for the window: "sliding" if causal, else "lerobot"."""
        architecture = self.architecture or ("sliding" if self.window == "causal" else "lerobot")
        if architecture not in ARCHITECTURES:
            raise RewardkitError(f"architecture must be one of {ARCHITECTURES}, got '{architecture}'")
        if architecture == "sliding" and self.window != "causal":
            raise RewardkitError("the sliding architecture is causal: it needs window='causal'")
        return architecture

    def frame_gap_for(self, fps: float | None = None) -> int:
        """The frame gap in frames: `frame_gap` when given, else `frame_gap_seconds` at `fps` (at
        DEFAULT_FPS when the fps is unknown), at least 1."""
        if self.frame_gap is not None:
            return int(self.frame_gap)
        seconds = self.frame_gap_seconds if self.frame_gap_seconds is not None else 1.0
        return max(1, round(seconds * (fps or DEFAULT_FPS)))

    def resolved(self, fps: float | None = None) -> SARMConfig:
        """A new config with `architecture`, (sliding) `temporal_bands` and `frame_tokens`, and the frame
        gap in frames (at the dataset's `fps`) pinned from the fields as they are now; this one is left
        unchanged. A model is built from, and saves, the resolved config."""
        architecture = self.resolved_architecture
        sliding = architecture == "sliding"
        return replace(
            self,
            architecture=architecture,
            temporal_bands=self.layer_bands if sliding else self.temporal_bands,
            frame_tokens=(self.frame_tokens or DEFAULT_FRAME_TOKENS) if sliding else None,
            frame_gap=self.frame_gap_for(fps),
        )

    @property
    def layer_bands(self) -> list[int]:
        """Sliding architecture: `temporal_bands`, or n_obs_steps spread over the layers."""
        if self.temporal_bands is None:
            return spread_bands(self.n_obs_steps, self.num_layers)
        bands = [int(b) for b in self.temporal_bands]
        if len(bands) != self.num_layers or sum(bands) != self.n_obs_steps or min(bands) < 0:
            raise RewardkitError(
                f"temporal_bands {bands} must give one band >= 0 per layer ({self.num_layers}) adding "
                f"up to n_obs_steps ({self.n_obs_steps})"
            )
        return bands

    @property
    def uses_dual_heads(self) -> bool:
        """Whether the dense head is trained (dense_only and dual modes)."""
        return self.annotation_mode in ("dense_only", "dual")

    @property
    def window_size(self) -> int:
        """Frames in an observation window (n_obs_steps + 1)."""
        return self.n_obs_steps + 1

    @property
    def sequence_length(self) -> int:
        """Positions of a training sequence: the window plus room for rewound frames."""
        return self.window_size + self.max_rewind_steps

    @property
    def current_position(self) -> int:
        """Position of the scored frame inside the window."""
        return self.n_obs_steps if self.window == "causal" else self.n_obs_steps // 2

    @property
    def window_offsets(self) -> list[int]:
        """Frame offsets of the window relative to the scored frame (clamped to the episode later)."""
        gap = self.frame_gap_for()
        if self.window == "causal":
            return [-gap * i for i in range(self.n_obs_steps, -1, -1)]
        half = self.n_obs_steps // 2
        return [gap * i for i in range(-half, half + 1)]

    def stages(self, scheme: str) -> int:
        """Number of stages of a head ("sparse" or "dense")."""
        if scheme == "sparse":
            return self.num_sparse_stages
        return self.num_dense_stages or self.num_sparse_stages

    def proportions(self, scheme: str) -> list[float]:
        """Temporal proportions of a head (uniform when not given)."""
        given = self.sparse_temporal_proportions if scheme == "sparse" else self.dense_temporal_proportions
        count = self.stages(scheme)
        return list(given) if given else [1.0 / count] * count

    # ---- lerobot's config interface ---------------------------------------------------------------
    def get_optimizer_preset(self) -> AdamWConfig:
        """AdamW as lerobot's SARM: lr 5e-5, weight decay 1e-3."""
        return AdamWConfig(lr=5e-5, weight_decay=1e-3, betas=(0.9, 0.999), eps=1e-8)

    def get_scheduler_preset(self) -> CosineDecayWithWarmupSchedulerConfig:
        """Linear warm-up (500 steps) then cosine decay to 5e-6 over 50k steps (scaled to shorter runs)."""
        return CosineDecayWithWarmupSchedulerConfig(
            peak_lr=5e-5, decay_lr=5e-6, num_warmup_steps=500, num_decay_steps=50000
        )

    def validate_features(self) -> None:
        pass

    @property
    def observation_delta_indices(self) -> list[int]:
        return self.window_offsets

    @property
    def action_delta_indices(self) -> None:
        return None

    @property
    def reward_delta_indices(self) -> None:
        return None
