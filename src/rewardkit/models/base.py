"""The reward-model base: config, strict save/load, registry, `rewardkit.load`.

Built on lerobot's `RewardModelConfig` / `PreTrainedRewardModel`, so every rewardkit reward model is also
a lerobot reward model: registered by type name in lerobot's config registry (draccus choice), buildable
through `lerobot.rewards.make_reward_model` (its plugin path: `<Name>Config` in `configuration_<x>.py`,
`<Name>RewardModel` in `modeling_<x>.py`), saved as config.json + model.safetensors.

What we change from lerobot's base: loading is strict (a missing or unexpected key is an error naming the
keys and the file, not a warning), a corrupt or truncated checkpoint is a clear error, a config.json of
another model type is refused by name, and saving is atomic (temporary files, then rename).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Required, TypedDict, TypeVar, runtime_checkable

import numpy as np
import torch
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from lerobot.configs.rewards import RewardModelConfig
from lerobot.rewards.pretrained import PreTrainedRewardModel
from torch import Tensor

from rewardkit.errors import RewardkitError

T = TypeVar("T", bound="RewardKitModel")

# Modules that register rewardkit model types when imported. `load` imports them lazily so that
# `import rewardkit` stays light.
MODEL_MODULES = (
    "rewardkit.models.sarm",
    "rewardkit.models.rewact",
    "rewardkit.models.classifier",
    "rewardkit.models.topreward",
    "rewardkit.models.robometer",
    "rewardkit.models.vlm_progress",
    "rewardkit.models.ensemble",
)


@dataclass
class ModelInputs:
    """What a model needs to label an episode (the labeller provides exactly this).

    Args:
        cameras: camera keys the model reads.
        encoder: frozen-encoder spec whose cached features the model reads (None: the model reads raw
            frames through `EpisodeInputs.frames`).
        state: whether the model reads `observation.state`.
    """

    cameras: list[str]
    encoder: str | None = None
    state: bool = False


@dataclass
class EpisodeInputs:
    """One whole episode, as the labeller hands it to `RewardKitModel.label_episode`.

    Args:
        episode_index: the episode's index in the dataset.
        task: the episode's task text.
        length: number of frames T.
        fps: frames per second.
        state: (T, S) float32 robot state, when the model asked for it.
        image_features: camera -> (T, D) float16/32 cached frozen-encoder features (cache-reading models).
        text_features: (D,) cached text features of `task` (cache-reading models).
        frames: camera -> (T, H, W, 3) uint8 decoded frames, decoded on demand (raw-image models).
        frame_indices: (N,) sorted int positions in 0..T-1 whose outputs the labeller needs (`--stride`);
            None means every frame. A model may compute only these and return (N,) arrays, or ignore it
            and return (T,) arrays: the labeller accepts both.
    """

    episode_index: int
    task: str
    length: int
    fps: int
    state: Any = None
    image_features: dict[str, Any] | None = None
    text_features: Any = None
    frames: Callable[[str], Any] | None = None
    frame_indices: Any = None


class FrameOutputs(TypedDict, total=False):
    """What `label_episode` returns for the N frames it was asked for (numpy arrays, N = T or the
    number of `frame_indices`).

    Args:
        progress: (N,) task progress in [0, 1]; always present (SARM: its sparse head).
        progress_dense: (N,) progress of a second, dense head (SARM dual / dense_only).
        stage_probs: (N, K) probabilities of the K stages of the main head (rows sum to 1).
        success_prob: (N,) P(task has succeeded), from a success head or classifier.
        log_prob: (N,) a zero-shot VLM's raw score (TOPReward: log P("True")) before normalisation.
        progress_std: (N,) the spread of `progress` across an ensemble's members (population standard
            deviation, in [0, 0.5]): where it is high the members disagree, a frame to look at.
    """

    progress: Required[np.ndarray]
    progress_dense: np.ndarray
    stage_probs: np.ndarray
    success_prob: np.ndarray
    log_prob: np.ndarray
    progress_std: np.ndarray


@runtime_checkable
class RewardModel(Protocol):
    """What every reward model gives the code above `models/` (labeller, eval, viz, monitor, RA-BC).

    Three verbs, the same for every model (SARM, RewACT, the success classifier, ...):

    - `required_inputs()`: what `label_episode` reads (cameras, cached encoder features or raw frames,
      state), so the labeller decodes and caches exactly that;
    - `label_episode(inputs)`: every requested frame of one whole episode -> `FrameOutputs`;
    - `online(**kwargs)`: an adapter that runs the model one observation at a time
      (`rewardkit.models.online.OnlineModel`), equal to `label_episode` on a recorded episode.

    Batch-level scoring is lerobot's verb, `compute_reward(batch) -> (B,)`. Loading is `rewardkit.load`
    (the same object as the class's own `from_pretrained`), saving `save_pretrained`.
    `tests/models/test_model_contract.py` checks every model against this.
    """

    config: Any

    def required_inputs(self) -> ModelInputs: ...

    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs: ...

    def online(self, **kwargs: Any) -> Any: ...


class CheckpointError(RewardkitError):
    """A checkpoint cannot be loaded; the message names the file and what is wrong."""


@dataclass
class RewardKitConfig(RewardModelConfig):
    """Base of every rewardkit reward-model config (a lerobot `RewardModelConfig`).

    Subclasses are dataclasses registered with `@RewardModelConfig.register_subclass("rewardkit_<x>")`,
    every field documented in the class docstring.
    """

    def __post_init__(self) -> None:
        # lerobot's base warns and picks a device when none is given; we default quietly to CPU/CUDA.
        if not self.device:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        super().__post_init__()


class RewardKitModel(PreTrainedRewardModel):
    """Base of every rewardkit reward model.

    Subclasses set `config_class` and `name`, implement `predict_progress`, and (when trainable)
    `forward(batch) -> (loss, logs)`.
    """

    config_class: ClassVar[type[RewardKitConfig]] = RewardKitConfig
    name: ClassVar[str] = "rewardkit"

    # ---- inference -----------------------------------------------------------------------------
    def predict_progress(self, batch: dict[str, Tensor]) -> Tensor:
        """Per-sample task progress in [0, 1], shape (B,). Each model documents its batch keys."""
        raise NotImplementedError

    def compute_reward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.predict_progress(batch)

    def prepare_for_dataset(self, dataset: Any) -> None:
        """Called by the labeller before labelling `dataset` (a `RewardDataset`); no-op by default. A
        model whose input statistics come from the dataset it labels (a lerobot SARM checkpoint) sets
        them here."""

    def required_inputs(self) -> ModelInputs:
        """What `label_episode` needs; the labeller reads (and caches) exactly that."""
        raise NotImplementedError

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """Every requested frame's outputs for one whole episode, computed in batches (`FrameOutputs`)."""
        raise NotImplementedError

    def online(self, **kwargs: Any) -> Any:
        """An adapter that runs this model one observation at a time (`rewardkit.models.online`)."""
        raise RewardkitError(f"{type(self).__name__} cannot run online (it has no online adapter)")

    # ---- save ----------------------------------------------------------------------------------
    def save_pretrained(
        self, save_directory: str | Path, *args: Any, push_to_hub: bool = False, **kwargs: Any
    ):
        """Write config.json and model.safetensors into `save_directory`, atomically.

        Files are written to a temporary folder beside the target, then renamed into place, so an
        interrupted save never leaves a half-written checkpoint. Pushes to the hub only when
        `push_to_hub=True`.
        """
        save_directory = Path(save_directory)
        save_directory.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            dir=save_directory.parent, prefix=f".{save_directory.name}.tmp"
        ) as tmp:
            self._save_pretrained(Path(tmp))
            save_directory.mkdir(parents=True, exist_ok=True)
            for item in Path(tmp).iterdir():
                os.replace(item, save_directory / item.name)
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", None) or self.config.repo_id
            if not repo_id:
                raise RewardkitError("push_to_hub needs a repo_id (argument or config.repo_id)")
            return self.push_to_hub(repo_id=repo_id, **kwargs)
        return None

    # ---- load ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls: type[T],
        pretrained_name_or_path: str | Path,
        *,
        config: RewardModelConfig | None = None,
        revision: str | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> T:
        """Load a checkpoint folder (or hub repo) strictly. Errors name the file and the problem."""
        folder = resolve_checkpoint(pretrained_name_or_path, revision=revision)
        if config is None:
            config = load_config(folder)
        if not isinstance(config, cls.config_class):
            raise CheckpointError(
                f"{folder / CONFIG_NAME} is a '{config.type}' checkpoint, not '{cls.config_class().type}'"
                f" ({cls.__name__}); use rewardkit.load() to load any rewardkit model"
            )
        model = cls(config, **kwargs)
        load_weights(model, folder / SAFETENSORS_SINGLE_FILE, strict=strict)
        model.to(config.device)
        model.eval()
        return model


def resolve_checkpoint(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint folder, downloading config.json + model.safetensors from the hub when needed."""
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    if (
        path.exists()
        or str(path_or_repo_id).startswith((".", "/", "~"))
        or str(path_or_repo_id).count("/") != 1
    ):
        raise CheckpointError(f"checkpoint folder {path} not found")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id=str(path_or_repo_id),
            revision=revision,
            allow_patterns=["*.json", "*.safetensors"],
        )
    except Exception as e:
        from rewardkit.data.dataset import hub_lookup_message

        raise CheckpointError(hub_lookup_message("checkpoint", path_or_repo_id, e)) from e
    return Path(local)


def read_config_dict(folder: Path) -> dict[str, Any]:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"missing {config_path}: not a model checkpoint folder")
    try:
        data = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt {config_path}: {e}") from e
    if not isinstance(data, dict) or "type" not in data:
        raise CheckpointError(f"{config_path} has no 'type' field: not a lerobot/rewardkit checkpoint")
    return data


def load_config(folder: Path) -> RewardModelConfig:
    """Parse a checkpoint's config.json into its registered config class."""
    import_model_modules()
    data = read_config_dict(folder)
    model_type = data["type"]
    if model_type not in RewardModelConfig.get_known_choices():
        raise CheckpointError(
            f"{folder / CONFIG_NAME} has model type '{model_type}', which is not a known reward model "
            f"(known: {sorted(RewardModelConfig.get_known_choices())})"
        )
    try:
        return RewardModelConfig.from_pretrained(folder)
    except Exception as e:
        raise CheckpointError(f"cannot parse {folder / CONFIG_NAME} as '{model_type}': {e}") from e


def load_weights(model: torch.nn.Module, weights_path: Path, strict: bool = True) -> None:
    """Load safetensors weights into `model`; missing/unexpected keys and corrupt files are errors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not weights_path.is_file():
        raise CheckpointError(f"missing weights file {weights_path}")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"corrupt or truncated weights file {weights_path}: {e}") from e
    own = model.state_dict()
    # safetensors drops the duplicates of shared (tied) tensors on save: accept their absence.
    shared = _shared_tensor_aliases(model)
    missing = sorted(k for k in own if k not in state and k not in shared)
    unexpected = sorted(k for k in state if k not in own)
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"weights file {weights_path} does not match {type(model).__name__}: "
            f"missing keys {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected keys {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}"
        )
    mismatched = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise CheckpointError(
            f"weights file {weights_path}: shape of '{k}' is {tuple(state[k].shape)}, the model's config "
            f"gives {tuple(own[k].shape)} ({len(mismatched)} mismatched tensors)"
        )
    model.load_state_dict(state, strict=False)


def _shared_tensor_aliases(model: torch.nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    aliases = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen and tensor.numel() > 0:
            aliases.add(name)
        else:
            seen[ptr] = name
    return aliases


# ---- registry of loaders -----------------------------------------------------------------------
# Types that are not rewardkit reward models but that `rewardkit.load` accepts (a lerobot SARM
# checkpoint, the RewACT policy). A loader takes a checkpoint folder and returns a model.
_EXTRA_LOADERS: dict[str, Callable[[Path], torch.nn.Module]] = {}


def register_loader(model_type: str, loader: Callable[[Path], torch.nn.Module]) -> None:
    """Let `rewardkit.load` open checkpoints whose config.json has `"type": model_type`."""
    _EXTRA_LOADERS[model_type] = loader


# Models that are named rather than trained here (zero-shot VLMs, wrapped lerobot models): `rewardkit.load`
# builds them from a spec "<name>" or "<name>:<argument>" (e.g. "topreward:Qwen/Qwen3-VL-2B-Instruct").
_NAMED_MODELS: dict[str, Callable[..., torch.nn.Module]] = {}


def register_named_model(name: str, builder: Callable[..., torch.nn.Module]) -> None:
    """Let `rewardkit.load("<name>[:<argument>]", **options)` build a model with
    `builder(argument_or_None, **options)` (the argument: a VLM id or folder, a server's model name...)."""
    _NAMED_MODELS[name] = builder


def named_model_spec(spec: str | Path) -> tuple[str, str | None] | None:
    """("name", argument or None) when `spec` names a registered model (and no such local path exists)."""
    text = str(spec)
    if Path(text).expanduser().exists():
        return None
    name, sep, argument = text.partition(":")
    if name not in _NAMED_MODELS:
        return None
    return name, (argument or None) if sep else None


def import_model_modules() -> None:
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a real import error inside an existing module
                raise


def model_class_for(config: RewardModelConfig) -> type[RewardKitModel]:
    from lerobot.rewards.factory import get_reward_model_class

    cls = get_reward_model_class(config.type)
    if not issubclass(cls, RewardKitModel):
        raise CheckpointError(f"model type '{config.type}' is not a rewardkit model")
    return cls


def load(
    path_or_repo_id: str | Path,
    device: str | None = None,
    revision: str | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Load any rewardkit model: a checkpoint folder or hub repo (any rewardkit model, or a type
    registered with `register_loader`), or a named model "<name>[:<argument>]" (`register_named_model`:
    e.g. "topreward:Qwen/Qwen3-VL-2B-Instruct", "vlm_progress"), built with `options`.

    Returns the model in eval mode on `device` (default: the config's device).
    """
    import_model_modules()
    named = named_model_spec(path_or_repo_id)
    if named is not None:
        model = _NAMED_MODELS[named[0]](named[1], **options)
        if device is not None:
            model.to(device)
        return model.eval()
    if options:
        raise CheckpointError(
            f"options {sorted(options)} apply to named models only ({sorted(_NAMED_MODELS)}), "
            f"not to the checkpoint {path_or_repo_id}"
        )
    folder = resolve_checkpoint(path_or_repo_id, revision=revision)
    model_type = read_config_dict(folder)["type"]
    if model_type in _EXTRA_LOADERS:
        model = _EXTRA_LOADERS[model_type](folder)
    else:
        config = load_config(folder)
        if not isinstance(config, RewardKitConfig):
            raise CheckpointError(
                f"{folder / CONFIG_NAME} is a lerobot '{model_type}' checkpoint that rewardkit cannot load"
            )
        model = model_class_for(config).from_pretrained(folder, config=config)
    if device is not None:
        model.to(device)
    return model.eval()
