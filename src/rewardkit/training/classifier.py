"""The success classifier's training recipe: `rewardkit train --model.type=classifier ...` lands here.

Labels per frame come from (`--labels.source`):
- "reward_column": a per-frame reward column (`next.reward`, as HIL-SERL / lerobot's reward classifier
  datasets have): success where reward > `--labels.reward_threshold`;
- "last_k": the last `--labels.last_k` frames of each successful episode are successes, everything else
  not; episodes listed in `--labels.failed_episodes` are failures (episode marks);
- "auto": "reward_column" when the dataset has that column, else "last_k".

Frozen backbone: features of every frame are computed once (the feature cache) and the head trains on
them; finetune backbone: frames are decoded once, resized to `--model.image_size`, and the CNN trains
on them in memory. Classes are balanced by per-sample loss weights.

The loop is the generic `rewardkit.training.Trainer` (AdamW, cosine learning-rate decay, validation,
exact `--resume`, `--mixed_precision`): checkpoints go to `<output_dir>/checkpoints/<step>/pretrained_model`
(`checkpoints/last` -> the latest). At the end the success-vs-failure AUROC is measured on the validation
episodes (`--val_episodes` or `--val_fraction`; default: the training frames) and written, with the final
validation logs, to `<output_dir>/train_metrics.json`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.utils.constants import OBS_STATE

from rewardkit.data.dataset import DatasetError, RewardDataset, open_from_config
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.metrics import roc_auc
from rewardkit.io_utils import atomic_write_text
from rewardkit.models.classifier.configuration_classifier import SuccessClassifierConfig
from rewardkit.models.classifier.labels import balanced_weights, labels_from_reward, labels_last_k
from rewardkit.models.classifier.modeling_classifier import (
    FEATURES_KEY,
    LABEL_KEY,
    WEIGHT_KEY,
    SuccessClassifierRewardModel,
)
from rewardkit.training.flags import (
    RewardTrainingConfig,
    check_numeric_inputs,
    find_failed_episodes,
    validation_split,
)
from rewardkit.training.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("auto", "reward_column", "last_k")


@dataclass
class SuccessLabelConfig:
    """Where per-frame success labels come from.

    Args:
        source: "auto", "reward_column" or "last_k" (see the module docstring).
        reward_column: the per-frame reward column read by "reward_column".
        reward_threshold: frames with reward above this are successes.
        last_k: number of final frames of a successful episode labelled success ("last_k").
        failed_episodes: deprecated (one more release): use the shared `--failed_episodes`.
    """

    source: str = "auto"
    reward_column: str = "next.reward"
    reward_threshold: float = 0.0
    last_k: int = 10
    failed_episodes: list[int] = field(default_factory=list)


@dataclass
class ClassifierTrainConfig(RewardTrainingConfig):
    """`rewardkit train --model.type=classifier`: train a success classifier.

    The training flags (`--steps`, `--batch_size`, `--lr`, `--resume`, `--mixed_precision`, ...) are the
    generic trainer's; the classifier's defaults: 1000 steps, AdamW lr 3e-4 and weight decay 1e-4 (the
    model's preset) decayed by a cosine to lr/10, gradient clipping at 1, seed 0, no validation split
    (the AUROC is then measured on the training frames).

    Args:
        model: the classifier's config (`--model.backbone=frozen|finetune`, `--model.cameras`, ...).
        labels: per-frame success labels (`--labels.source`, `--labels.last_k`, ...); "last_k" labels
            every frame of a failed episode (`--failed_episodes`, `--failure_column`, keyframes) a failure.
        output_dir: where checkpoints (`checkpoints/<step>/pretrained_model`) and train_metrics.json go.
    """

    model: SuccessClassifierConfig = field(default_factory=SuccessClassifierConfig)
    labels: SuccessLabelConfig = field(default_factory=SuccessLabelConfig)
    output_dir: str = "outputs/classifier"
    steps: int = 1000
    grad_clip_norm: float = 1.0
    seed: int = 0
    val_fraction: float = 0.0


# ---- data --------------------------------------------------------------------------------------
def episode_labels(
    dataset: RewardDataset, episode_index: int, labels: SuccessLabelConfig, failed: Collection[int] = ()
) -> np.ndarray:
    """(T,) float32 success labels of one episode, from the configured source (`failed`: the failed
    episodes, for "last_k")."""
    source = labels.source
    if source not in LABEL_SOURCES:
        raise RewardkitError(f"labels.source must be one of {LABEL_SOURCES}, got {source!r}")
    has_column = labels.reward_column in dataset.features
    if source == "auto":
        source = "reward_column" if has_column else "last_k"
    if source == "reward_column":
        if not has_column:
            raise DatasetError(
                f"dataset {dataset.root} has no '{labels.reward_column}' column for success labels; use "
                "--labels.source=last_k with --labels.failed_episodes, or name the column with --labels.reward_column"
            )
        reward = dataset.read_columns(episode_index, [labels.reward_column])[labels.reward_column]
        return labels_from_reward(reward, labels.reward_threshold)
    length = dataset.episode(episode_index).length
    return labels_last_k(length, episode_index not in set(failed), labels.last_k)


def frozen_episode_features(
    dataset: RewardDataset,
    encoder_spec: str,
    cameras: list[str],
    episodes: list[int],
    device: str = "cpu",
    cache_dir: str | None = None,
) -> dict[int, np.ndarray]:
    """episode -> (T, C, D) float32 frozen-encoder features, read from (or first written to) the feature
    cache; the encoder is built only when some frame is not cached."""
    from rewardkit.cache import open_or_build_cache

    cache = open_or_build_cache(
        dataset, encoder_spec, cameras, cache_dir, episodes=episodes, device=device, progress=False
    )
    return {
        ep: np.stack(
            [np.asarray(cache.episode_features(ep, cam), dtype=np.float32) for cam in cameras], axis=1
        )
        for ep in episodes
    }


def finetune_episode_frames(
    dataset: RewardDataset, cameras: list[str], episodes: list[int], image_size: int
) -> dict[int, dict[str, np.ndarray]]:
    """episode -> camera -> (T, S, S, 3) uint8 frames, each decoded once and resized to image_size."""
    import torch.nn.functional as F  # noqa: N812

    out: dict[int, dict[str, np.ndarray]] = {}
    for ep in episodes:
        out[ep] = {}
        for cam in cameras:
            frames = torch.from_numpy(dataset.read_frames(ep, cam)).permute(0, 3, 1, 2).float()
            if frames.shape[-2:] != (image_size, image_size):
                frames = F.interpolate(frames, size=(image_size, image_size), mode="bilinear", antialias=True)
            out[ep][cam] = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def _stack(per_episode: dict[int, Any], episodes: list[int]) -> Any:
    first = per_episode[episodes[0]]
    if isinstance(first, dict):
        return {k: np.concatenate([per_episode[ep][k] for ep in episodes]) for k in first}
    return np.concatenate([per_episode[ep] for ep in episodes])


def build_training_arrays(
    dataset: RewardDataset, cfg: ClassifierTrainConfig, episodes: list[int], failed: Collection[int] = ()
) -> dict[str, np.ndarray]:
    """All training frames of `episodes` as arrays: inputs (features or frames, state) and "success" (N,)
    (`failed`: the failed episodes, for "last_k" labels)."""
    model_cfg = cfg.model
    arrays: dict[str, np.ndarray] = {}
    if model_cfg.backbone == "frozen":
        arrays[FEATURES_KEY] = _stack(
            frozen_episode_features(
                dataset, model_cfg.encoder, model_cfg.cameras, episodes, model_cfg.device, cfg.cache_dir
            ),
            episodes,
        )
    else:
        arrays.update(
            _stack(
                finetune_episode_frames(dataset, model_cfg.cameras, episodes, model_cfg.image_size), episodes
            )
        )
    if model_cfg.use_state:
        arrays[OBS_STATE] = np.concatenate(
            [dataset.read_columns(ep, [OBS_STATE])[OBS_STATE] for ep in episodes]
        ).astype(np.float32)
    arrays[LABEL_KEY] = np.concatenate([episode_labels(dataset, ep, cfg.labels, failed) for ep in episodes])
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise DatasetError(
            f"dataset {dataset.root}: inputs and labels differ in frame count ({sorted(lengths)})"
        )
    return arrays


def _batch(arrays: dict[str, np.ndarray], index: np.ndarray | int) -> dict[str, torch.Tensor]:
    """Rows `index` (an array: a batch; an int: one sample) of every array, as tensors (copies)."""
    return {k: torch.from_numpy(np.array(v[index])) for k, v in arrays.items()}


class ClassifierTrainingData(torch.utils.data.Dataset):
    """Labelled frames as classifier samples: the inputs of `arrays` (features or frames per camera, state),
    "success" and "weight" (balanced over this data's classes, so the loss weighs both classes alike).

    `get_batch(indices, rng)` gathers a whole batch by one fancy index per array (what the trainer uses);
    `__getitem__` returns one sample for generic loaders (collated, the same batch).
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {**arrays, WEIGHT_KEY: balanced_weights(arrays[LABEL_KEY])}

    def __len__(self) -> int:
        return len(self.arrays[LABEL_KEY])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _batch(self.arrays, int(index))

    def get_batch(
        self, indices: np.ndarray, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        del rng  # no augmentation
        return _batch(self.arrays, np.asarray(indices))


@torch.no_grad()
def predict_arrays(
    model: SuccessClassifierRewardModel, arrays: dict[str, np.ndarray], batch_size: int = 256
) -> np.ndarray:
    """Success probabilities (N,) of every frame in `arrays`."""
    model.eval()
    count = len(arrays[LABEL_KEY])
    inputs = {k: v for k, v in arrays.items() if k not in (LABEL_KEY, WEIGHT_KEY)}
    chunks = [
        model.predict_success_prob(_batch(inputs, np.arange(s, min(s + batch_size, count)))).cpu().numpy()
        for s in range(0, count, batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def prepare(
    cfg: ClassifierTrainConfig,
) -> tuple[SuccessClassifierRewardModel, ClassifierTrainingData, ClassifierTrainingData | None]:
    """The model (config resolved against the dataset) and its training / validation data.

    `cfg.model` is not changed: cameras, state and feature sizes go into a new config, the model's."""
    dataset = open_from_config(cfg.dataset)
    model_cfg = replace(cfg.model, cameras=list(cfg.model.cameras or dataset.camera_keys))
    cfg = replace(cfg, model=model_cfg)
    for cam in model_cfg.cameras:
        dataset.check_camera(cam)
    reads_reward = cfg.labels.source == "reward_column" or (
        cfg.labels.source == "auto" and cfg.labels.reward_column in dataset.features
    )
    check_numeric_inputs(dataset, model_cfg.use_state, [cfg.labels.reward_column] if reads_reward else [])
    if model_cfg.use_state:
        model_cfg.state_dim = int(dataset.features[OBS_STATE]["shape"][0])
    if cfg.labels.failed_episodes:
        logger.warning("labels.failed_episodes is deprecated; use --failed_episodes")
        cfg = replace(cfg, failed_episodes=[*(cfg.failed_episodes or []), *cfg.labels.failed_episodes])
    failed = find_failed_episodes(dataset, cfg)
    train_episodes, val = validation_split(list(dataset.episode_indices), cfg, dataset.root)

    arrays = build_training_arrays(dataset, cfg, train_episodes, failed)
    labels = arrays[LABEL_KEY]
    positives = int(labels.sum())
    logger.info(
        "training frames: %d (%d success, %d not); validation episodes: %s",
        len(labels), positives, len(labels) - positives, val or "none (AUROC on the training frames)",
    )  # fmt: skip
    if positives == 0 or positives == len(labels):
        raise RewardkitError(
            f"the success labels of {dataset.root} are all {'failures' if positives == 0 else 'successes'}: "
            "a classifier needs both (check --labels.source, --labels.last_k and --failed_episodes)"
        )
    if model_cfg.backbone == "frozen":
        model_cfg.feature_dim = int(arrays[FEATURES_KEY].shape[-1])
    model = SuccessClassifierRewardModel(model_cfg)
    if model_cfg.backbone == "finetune" and model_cfg.pretrained_cnn:
        model.cnn.load_imagenet_weights()
    if model_cfg.backbone == "frozen":
        model.set_feature_statistics(arrays[FEATURES_KEY])
    val_data = ClassifierTrainingData(build_training_arrays(dataset, cfg, val, failed)) if val else None
    return model, ClassifierTrainingData(arrays), val_data


# ---- the loop ----------------------------------------------------------------------------------
def train_classifier(cfg: ClassifierTrainConfig) -> tuple[SuccessClassifierRewardModel, dict[str, Any]]:
    """Train a success classifier as configured (checkpoints in `cfg.output_dir`); returns the model and
    its metrics: AUROC and accuracy (on the validation frames, else the training frames), the final
    validation logs and the last checkpoint (also written to `<output_dir>/train_metrics.json`)."""
    torch.manual_seed(cfg.seed)
    model, train_data, val_data = prepare(cfg)
    trainer = Trainer(
        model,
        train_data,
        cfg,
        cfg.output_dir,
        val_data,
        run_config={"model": model.config.__dict__, "labels": asdict(cfg.labels)},
    )
    result = trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    eval_arrays = (val_data or train_data).arrays
    probs = predict_arrays(model, eval_arrays)
    labels = eval_arrays[LABEL_KEY]
    metrics = {
        "auroc": roc_auc(probs, labels),
        "accuracy": float(((probs >= model.config.threshold) == labels.astype(bool)).mean()),
        "frames": float(len(labels)),
        "on": "validation" if val_data is not None else "training",
        **result.val_logs,
        "step": result.step,
        "checkpoint": str(result.checkpoint),
    }
    atomic_write_text(Path(cfg.output_dir) / "train_metrics.json", json.dumps(metrics, indent=2))
    logger.info("success-vs-failure AUROC on %s frames: %.3f", metrics["on"], metrics["auroc"])
    return model, metrics


def train_classifier_recipe(cfg: ClassifierTrainConfig) -> TrainResult:
    """`train_classifier` as a `TrainResult` (what `rewardkit.training.train` returns for every model)."""
    _, metrics = train_classifier(cfg)
    step = int(metrics["step"])
    return TrainResult(checkpoint=Path(metrics["checkpoint"]), step=step, metrics=metrics)
