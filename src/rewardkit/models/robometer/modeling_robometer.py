"""lerobot's Robometer as a rewardkit model: the same network and the same per-frame sampling, fed from our
decoding path.

`RewardkitRobometerRewardModel` IS lerobot's `RobometerRewardModel` (a subclass: same modules, same
state-dict keys, same `compute_reward`, same forward `_compute_rbm_logits`), with rewardkit's verbs added:
`label_episode` (every frame of an episode), `online`, strict atomic save/load. Nothing of lerobot's
network or processor is copied; what we own is the feeding:

- frames come as decoded uint8 (T, H, W, 3) from `EpisodeInputs.frames` (each frame of an episode decoded
  once, in order) and go straight into lerobot's `RobometerEncoderProcessorStep.encode_samples`. lerobot's
  labeller (`compute_rabc_weights.compute_robometer_progress`) reads `dataset[i]` item by item (a video
  seek per frame, float frames turned back into uint8);
- the model's own config.json is used (lerobot's labeller rebuilds a default `RobometerConfig`, which
  fetches the base model's config from the hub and ignores the checkpoint's `vlm_config`);
- the network is built without random initialisation before its weights are read (`from_pretrained`):
  lerobot initialises the whole Qwen3-VL first, minutes on CPU for Robometer-4B;
- the image processor runs once per distinct frame of a batch of queries (`OncePerFrameImageProcessor`):
  lerobot runs it on every frame of every query, though most frames of a batch repeat;
- the processor folder is checked before lerobot loads it with `trust_remote_code=True` (a folder whose
  JSON files carry an `auto_map` would run its own code: refused), and the backbone must be a Qwen3-VL.

Frame t is scored from the frames round(linspace(0, t, K)) (K = `frames_per_query`; lerobot's
`_build_subsample_indices`), the last frame's progress (clamped to [0, 1]) and success probability kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from lerobot.rewards.robometer.compute_rabc_weights import _build_subsample_indices
from lerobot.rewards.robometer.modeling_robometer import (
    RobometerRewardModel,
    decode_progress_outputs,
)

from rewardkit.errors import RewardkitError
from rewardkit.models.base import (
    CheckpointError,
    EpisodeInputs,
    FrameOutputs,
    ModelInputs,
    RewardKitModel,
    read_config_dict,
    resolve_checkpoint,
)
from rewardkit.models.robometer.configuration_robometer import RewardkitRobometerConfig

QWEN3_VL = "qwen3_vl"
# The files a Qwen processor is made of (fetched from the hub when `processor_path` is a hub id).
PROCESSOR_PATTERNS = ["*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


def check_backbone_config(vlm_config: Any, where: str) -> None:
    """Refuse a backbone config that is not a Qwen3-VL's, or that would load code (`auto_map`)."""
    if not isinstance(vlm_config, dict) or not vlm_config:
        raise CheckpointError(
            f"{where} has no 'vlm_config' (the Qwen3-VL backbone's config): not a Robometer"
        )
    model_type = vlm_config.get("model_type")
    if model_type != QWEN3_VL:
        raise CheckpointError(
            f"{where}: the backbone is a '{model_type}', not a Qwen3-VL ('{QWEN3_VL}'); rewardkit runs "
            "Robometer on Qwen3-VL backbones only"
        )
    if "auto_map" in json.dumps(vlm_config):
        raise CheckpointError(f"{where}: the backbone config has an 'auto_map' (code to run): refused")


def processor_folder(path_or_repo_id: str) -> Path:
    """A local folder holding a Qwen3-VL processor (downloading its files when given a hub id), checked to
    carry no code: lerobot loads it with `trust_remote_code=True`."""
    path = Path(path_or_repo_id).expanduser()
    if not path.is_dir():
        if path.exists() or str(path_or_repo_id).startswith((".", "/", "~")) or str(path).count("/") != 1:
            raise RewardkitError(f"Robometer processor folder {path} not found")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(repo_id=str(path_or_repo_id), allow_patterns=PROCESSOR_PATTERNS))
        except Exception as e:
            from rewardkit.data.dataset import hub_lookup_message

            raise RewardkitError(hub_lookup_message("Robometer processor", path_or_repo_id, e)) from e
    for file in sorted(path.glob("*.json")):
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise RewardkitError(f"cannot read {file}: {e}") from e
        if '"auto_map"' in text:
            raise RewardkitError(
                f"{file} has an 'auto_map' (the processor would run the folder's own code): refused"
            )
    if not any((path / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        raise RewardkitError(
            f"{path} has no processor_config.json / preprocessor_config.json: not a Qwen3-VL processor folder "
            "(set processor_path to the base Qwen3-VL's folder)"
        )
    return path


class _DropProcessorKwargsWarning(logging.Filter):
    """lerobot's encoder passes `add_vision_id`, `enable_thinking` and `fps` to `apply_chat_template` once
    per query; transformers logs a warning for each (the template may not read them): one line per
    labelled frame. Dropped while we encode."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Kwargs passed to `processor.__call__`")


_PROCESSOR_LOGGER = logging.getLogger("transformers.processing_utils")


class OncePerFrameImageProcessor:
    """Qwen's image processor, run once per distinct image of a batch of queries.

    A batch of B queries of K frames holds B * K images, many of them the same frame (frame 0 is in every
    query; with K = 4, round(t / 3) and round(2 t / 3) repeat over consecutive t). lerobot's encoder hands
    all of them to the image processor (rescale, normalise, patchify on the CPU: tens of ms per 480x640
    image on one core; per labelled frame 215 ms with lerobot's encoder vs 65 ms with this wrapper,
    benchmarks/bench_robometer_label.py). This wrapper processes each distinct image (keyed by its
    pixels) once and concatenates the per-image results in order, which is what the processor returns for
    the batch (it processes images independently; the parity tests check it). The memo holds one batch
    (`clear()`).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.calls = 0  # images actually processed, for tests and benchmarks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def clear(self) -> None:
        self.memo.clear()

    def __call__(self, images: Any, **kwargs: Any) -> Any:
        import hashlib

        from transformers import BatchFeature

        options = repr(sorted(kwargs.items()))
        pixels, grids = [], []
        for image in images:
            key = (image.size, image.mode, hashlib.blake2b(image.tobytes(), digest_size=16).digest(), options)
            if key not in self.memo:
                out = self.inner(images=[image], **kwargs)
                self.memo[key] = (out["pixel_values"], out["image_grid_thw"])
                self.calls += 1
            pixels.append(self.memo[key][0])
            grids.append(self.memo[key][1])
        return BatchFeature({"pixel_values": torch.cat(pixels), "image_grid_thw": torch.cat(grids)})


class RewardkitRobometerRewardModel(RobometerRewardModel, RewardKitModel):
    """lerobot's Robometer with rewardkit's verbs (see the module docstring).

    `compute_reward(batch)` is lerobot's (a batch pre-encoded by `RobometerEncoderProcessorStep`);
    `label_episode` and `online` read raw frames of `config.image_key`.
    """

    config_class: ClassVar[type[RewardkitRobometerConfig]] = RewardkitRobometerConfig
    name: ClassVar[str] = "rewardkit_robometer"

    def __init__(self, config: RewardkitRobometerConfig, **kwargs: Any) -> None:
        check_backbone_config(
            config.vlm_config, f"Robometer config (pretrained_path={config.pretrained_path})"
        )
        # lerobot's factory passes dataset_stats / dataset_meta: Robometer normalises inside its processor.
        kwargs.pop("dataset_stats", None)
        kwargs.pop("dataset_meta", None)
        super().__init__(config, **kwargs)
        self._encoder = None

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: Any, *args: Any, **kwargs: Any):
        """Load a checkpoint strictly (`RewardKitModel.from_pretrained`), building the network WITHOUT random
        initialisation: every weight is then read from model.safetensors (a missing one is an error), so
        initialising them first only costs time. lerobot's constructor initialises the whole Qwen3-VL
        (`from_config`) before its weights are loaded: 8.7 s for a 155M-parameter Robometer on 2 CPU cores
        against 0.07 s without, i.e. minutes for Robometer-4B. With `strict=False` the usual initialisation
        runs (weights the file lacks keep it)."""
        if kwargs.get("strict", True) is False:
            return super().from_pretrained(pretrained_name_or_path, *args, **kwargs)
        from transformers.initialization import no_init_weights

        with no_init_weights():
            return super().from_pretrained(pretrained_name_or_path, *args, **kwargs)

    # ---- the processor -------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        """lerobot's `RobometerEncoderProcessorStep` for this checkpoint (built on first use)."""
        if self._encoder is None:
            from lerobot.rewards.robometer.processor_robometer import RobometerEncoderProcessorStep

            source = self.config.processor_path or self.config.base_model_id
            folder = processor_folder(source)
            try:
                step = RobometerEncoderProcessorStep(
                    base_model_id=str(folder),
                    image_key=self.config.image_key,
                    task_key=self.config.task_key,
                    default_task=self.config.default_task,
                    max_frames=self.config.max_frames,
                    use_multi_image=self.config.use_multi_image,
                    use_per_frame_progress_token=self.config.use_per_frame_progress_token,
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise RewardkitError(f"cannot load a Qwen3-VL processor from {folder}: {e}") from e
            processor = type(step._processor).__name__
            if processor != "Qwen3VLProcessor":
                raise RewardkitError(
                    f"{folder} holds a {processor}, not a Qwen3-VL processor (Qwen3VLProcessor)"
                )
            vocab = self.config.vlm_config["text_config"]["vocab_size"]
            if len(step._processor.tokenizer) > vocab:
                raise RewardkitError(
                    f"the tokenizer of {folder} has {len(step._processor.tokenizer)} tokens with Robometer's, "
                    f"the checkpoint's backbone {vocab}: not this checkpoint's base model's processor"
                )
            step._processor.image_processor = OncePerFrameImageProcessor(step._processor.image_processor)
            self._encoder = step
        return self._encoder

    # ---- rewardkit verbs -----------------------------------------------------------------------
    def required_inputs(self) -> ModelInputs:
        return ModelInputs(cameras=[self.config.image_key], encoder=None, state=False)

    def predict_progress(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """lerobot's `compute_reward` on a pre-encoded batch: (B,) last-frame progress (or success)."""
        return self.compute_reward(batch)

    def query_positions(self, t: int) -> np.ndarray:
        """(K,) frame positions frame `t` is scored from: round(linspace(0, t, K)), lerobot's sampling."""
        return _build_subsample_indices(t + 1, self.config.frames_per_query)[t]

    @torch.no_grad()
    def score_queries(self, clips: list[np.ndarray], task: str) -> tuple[np.ndarray, np.ndarray]:
        """Progress and success probability of the last frame of each clip, one forward pass.

        Args:
            clips: B arrays (K, H, W, 3) uint8, the frames of each query in time order.
            task: the task text.

        Returns ((B,) progress clamped to [0, 1], (B,) success probability), float32.
        """
        encoder = self.encoder
        encoder._processor.image_processor.clear()
        quiet = _DropProcessorKwargsWarning()
        _PROCESSOR_LOGGER.addFilter(quiet)
        try:
            encoded = encoder.encode_samples([(clip, task) for clip in clips])
        finally:
            _PROCESSOR_LOGGER.removeFilter(quiet)
        device = next(self.parameters()).device
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in encoded.items()}
        progress_logits, success_logits = self._compute_rbm_logits(batch)
        decoded = decode_progress_outputs(
            progress_logits, success_logits, is_discrete_mode=self.config.use_discrete_progress
        )
        progress = np.clip([seq[-1] for seq in decoded["progress_pred"]], 0.0, 1.0).astype(np.float32)
        success = np.asarray([seq[-1] for seq in decoded["success_probs"]], dtype=np.float32)
        return progress, success

    def task_text(self, task: str | None, where: str) -> str:
        """`task`, else the config's default task, else an error naming `where`."""
        text = task or self.config.default_task
        if not text:
            raise RewardkitError(f"{where} has no task text and the Robometer config no default_task")
        return text

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Progress and success probability of the requested frames of one episode.

        Reads `inputs.frames(config.image_key)` (T, H, W, 3) uint8 and `inputs.task`; frame t is scored from
        `query_positions(t)`, `label_batch_size` frames per forward pass. Returns {"progress": (N,),
        "success_prob": (N,)} float32 (N = T, or the number of `inputs.frame_indices`).
        """
        camera = self.config.image_key
        where = f"episode {inputs.episode_index}"
        if inputs.frames is None:
            raise RewardkitError(f"{where}: Robometer needs decoded frames of {camera} (inputs.frames)")
        video = np.asarray(inputs.frames(camera))
        if (
            video.ndim != 4
            or video.shape[0] != inputs.length
            or video.shape[-1] != 3
            or video.dtype != np.uint8
        ):
            raise RewardkitError(
                f"{where}: camera {camera} frames are {video.dtype} {video.shape}, expected uint8 "
                f"({inputs.length}, H, W, 3)"
            )
        task = self.task_text(inputs.task, where)
        frame_indices = inputs.frame_indices
        positions = (
            np.arange(inputs.length) if frame_indices is None else np.asarray(frame_indices, dtype=int)
        )
        progress = np.empty(len(positions), dtype=np.float32)
        success = np.empty(len(positions), dtype=np.float32)
        size = self.config.label_batch_size
        for start in range(0, len(positions), size):
            chunk = positions[start : start + size]
            clips = [video[self.query_positions(int(t))] for t in chunk]
            progress[start : start + size], success[start : start + size] = self.score_queries(clips, task)
        return {"progress": progress, "success_prob": success}

    def online(self, **kwargs: Any) -> Any:
        """A `RobometerOnline` adapter (kwargs: `every`, `task`)."""
        from rewardkit.models.robometer.online_robometer import RobometerOnline

        return RobometerOnline(self, **kwargs)


# ---- loading ---------------------------------------------------------------------------------------
def config_from_folder(folder: Path, **overrides: Any) -> RewardkitRobometerConfig:
    """A `RewardkitRobometerConfig` from a Robometer checkpoint's config.json (lerobot's "robometer" or our
    "rewardkit_robometer"), with `overrides` (our fields, device, torch_dtype...) applied."""
    data = read_config_dict(folder)
    where = str(folder / "config.json")
    if data["type"] not in ("robometer", "rewardkit_robometer"):
        raise CheckpointError(f"{where} is a '{data['type']}' checkpoint, not a Robometer ('robometer')")
    if data.get("vlm_config"):  # empty: lerobot's config fills it from base_model_id's config (checked below)
        check_backbone_config(data["vlm_config"], where)
    known = set(RewardkitRobometerConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise RewardkitError(f"unknown Robometer option(s) {unknown}; known: {sorted(known - {'type'})}")
    # A lerobot checkpoint holds the fields of lerobot's config: parse them with lerobot's parser (draccus,
    # which turns the feature dicts back into PolicyFeature), then add ours.
    from lerobot.configs.rewards import RewardModelConfig

    try:
        parsed = RewardModelConfig.from_pretrained(folder)
    except Exception as e:
        raise CheckpointError(f"cannot parse {where} as a Robometer config: {e}") from e
    values = {
        name: getattr(parsed, name)
        for name, field in RewardkitRobometerConfig.__dataclass_fields__.items()
        if field.init and hasattr(parsed, name)
    }
    values["pretrained_path"] = str(folder)
    values.update(overrides)
    try:
        config = RewardkitRobometerConfig(**values)
    except (ValueError, TypeError) as e:
        raise RewardkitError(f"bad Robometer option for {folder}: {e}") from e
    check_backbone_config(config.vlm_config, f"{where} (base_model_id {config.base_model_id})")
    return config


def load_robometer(folder: str | Path, **options: Any) -> RewardkitRobometerRewardModel:
    """A Robometer checkpoint folder (lerobot's "robometer" or "rewardkit_robometer"; safetensors only),
    loaded strictly; `options` override config fields (device, torch_dtype, frames_per_query, ...)."""
    folder = Path(folder)
    config = config_from_folder(folder, **options)
    return RewardkitRobometerRewardModel.from_pretrained(folder, config=config)


DEFAULT_CHECKPOINT = "lerobot/Robometer-4B"


def build_named_robometer(argument: str | None, **options: Any) -> RewardkitRobometerRewardModel:
    """`rewardkit.load("robometer[:<hub id or folder>]", **options)`: default lerobot/Robometer-4B."""
    folder = resolve_checkpoint(argument or DEFAULT_CHECKPOINT)
    return load_robometer(folder, **options)
