"""Training the success classifier: `rewardkit train --model.type=classifier ...` lands here.

Labels per frame come from (`--labels.source`):
- "reward_column": a per-frame reward column (`next.reward`, as HIL-SERL / lerobot's reward classifier
  datasets have): success where reward > `--labels.reward_threshold`;
- "last_k": the last `--labels.last_k` frames of each successful episode are successes, everything else
  not; episodes listed in `--labels.failed_episodes` are failures (episode marks);
- "auto": "reward_column" when the dataset has that column, else "last_k".

Frozen backbone: features of every frame are computed once (the feature cache) and the head trains on
them; finetune backbone: frames are decoded once, resized to `--model.image_size`, and the CNN trains
on them in memory. Classes are balanced by per-sample loss weights. At the end the success-vs-failure
AUROC is measured on the validation episodes (`--val_episodes`, default: the training frames) and the
checkpoint is written to `--output_dir`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardkit.data.dataset import DatasetConfig, DatasetError, RewardDataset, open_from_config
from rewardkit.io_utils import atomic_write_text

from .configuration_classifier import SuccessClassifierConfig
from .labels import balanced_weights, labels_from_reward, labels_last_k
from .modeling_classifier import (
    FEATURES_KEY,
    LABEL_KEY,
    STATE_KEY,
    WEIGHT_KEY,
    SuccessClassifierRewardModel,
    success_auroc,
)

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
        failed_episodes: episodes marked as failures ("last_k": all their frames are failures).
    """

    source: str = "auto"
    reward_column: str = "next.reward"
    reward_threshold: float = 0.0
    last_k: int = 10
    failed_episodes: list[int] = field(default_factory=list)


@dataclass
class ClassifierTrainConfig:
    """`rewardkit train --model.type=classifier`: train a success classifier.

    Args:
        dataset: the LeRobot dataset (`--dataset.root`, `--dataset.repo_id`, `--dataset.episodes`).
        model: the classifier's config (`--model.backbone=frozen|finetune`, `--model.cameras`, ...).
        labels: per-frame success labels (`--labels.source`, `--labels.last_k`, ...).
        output_dir: where the checkpoint (config.json + model.safetensors) is written.
        steps: optimisation steps.
        batch_size: frames per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        cache_dir: root of the feature cache (frozen backbone; default `$REWARDKIT_CACHE` or
            ~/.cache/rewardkit/features).
        val_episodes: episodes held out for the AUROC (default: measured on the training frames).
        seed: random seed.
        log_every: log the loss every this many steps.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: SuccessClassifierConfig = field(default_factory=SuccessClassifierConfig)
    labels: SuccessLabelConfig = field(default_factory=SuccessLabelConfig)
    output_dir: str = "outputs/classifier"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    cache_dir: str | None = None
    val_episodes: list[int] | None = None
    seed: int = 0
    log_every: int = 100


# ---- data --------------------------------------------------------------------------------------
def episode_labels(dataset: RewardDataset, episode_index: int, labels: SuccessLabelConfig) -> np.ndarray:
    """(T,) float32 success labels of one episode, from the configured source."""
    source = labels.source
    if source not in LABEL_SOURCES:
        raise ValueError(f"labels.source must be one of {LABEL_SOURCES}, got {source!r}")
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
    return labels_last_k(length, episode_index not in set(labels.failed_episodes), labels.last_k)


def frozen_episode_features(
    dataset: RewardDataset,
    encoder_spec: str,
    cameras: list[str],
    episodes: list[int],
    device: str = "cpu",
    cache_dir: str | None = None,
) -> dict[int, np.ndarray]:
    """episode -> (T, C, D) float32 frozen-encoder features, read from (or first written to) the feature cache."""
    from rewardkit.cache import build_cache
    from rewardkit.encoders import make_encoder

    cache = build_cache(
        dataset, make_encoder(encoder_spec, device=device), cameras, cache_dir=cache_dir, episodes=episodes,
        progress=False,
    )  # fmt: skip
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
    dataset: RewardDataset, cfg: ClassifierTrainConfig, episodes: list[int]
) -> dict[str, np.ndarray]:
    """All training frames of `episodes` as arrays: inputs (features or frames, state) and "success" (N,)."""
    model_cfg = cfg.model
    arrays: dict[str, np.ndarray] = {}
    if model_cfg.backbone == "frozen":
        arrays[FEATURES_KEY] = _stack(
            frozen_episode_features(
                dataset, model_cfg.encoder, model_cfg.cameras, episodes, model_cfg.device
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
        arrays[STATE_KEY] = np.concatenate(
            [dataset.read_columns(ep, [STATE_KEY])[STATE_KEY] for ep in episodes]
        ).astype(np.float32)
    arrays[LABEL_KEY] = np.concatenate([episode_labels(dataset, ep, cfg.labels) for ep in episodes])
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise DatasetError(
            f"dataset {dataset.root}: inputs and labels differ in frame count ({sorted(lengths)})"
        )
    return arrays


def _batch(arrays: dict[str, np.ndarray], index: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v[index])).to(device) for k, v in arrays.items()}


@torch.no_grad()
def predict_arrays(
    model: SuccessClassifierRewardModel, arrays: dict[str, np.ndarray], batch_size: int = 256
) -> np.ndarray:
    """Success probabilities (N,) of every frame in `arrays`."""
    model.eval()
    count = len(arrays[LABEL_KEY])
    inputs = {k: v for k, v in arrays.items() if k not in (LABEL_KEY, WEIGHT_KEY)}
    device = model.config.device
    chunks = [
        model.predict_success_prob(_batch(inputs, np.arange(s, min(s + batch_size, count)), device))
        .cpu()
        .numpy()
        for s in range(0, count, batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


# ---- the loop ----------------------------------------------------------------------------------
def train_classifier(cfg: ClassifierTrainConfig) -> tuple[SuccessClassifierRewardModel, dict[str, float]]:
    """Train a success classifier as configured; returns the model and its metrics (AUROC, accuracy)."""
    dataset = open_from_config(cfg.dataset)
    model_cfg = cfg.model
    if not model_cfg.cameras:
        model_cfg.cameras = list(dataset.camera_keys)
    for cam in model_cfg.cameras:
        dataset.check_camera(cam)
    if model_cfg.use_state:
        model_cfg.state_dim = int(dataset.features[STATE_KEY]["shape"][0])
    if model_cfg.backbone == "frozen":
        from rewardkit.encoders import make_encoder

        model_cfg.feature_dim = int(make_encoder(model_cfg.encoder).feature_dim)
    val = sorted(set(cfg.val_episodes or []))
    unknown = [ep for ep in val if ep not in dataset.episode_indices]
    if unknown:
        raise DatasetError(f"val_episodes {unknown} are not episodes of {dataset.root}")
    train_episodes = [ep for ep in dataset.episode_indices if ep not in val]
    if not train_episodes:
        raise ValueError("no training episodes left after holding out val_episodes")

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    arrays = build_training_arrays(dataset, cfg, train_episodes)
    positives = int(arrays[LABEL_KEY].sum())
    logger.info(
        "training frames: %d (%d success, %d not)",
        len(arrays[LABEL_KEY]),
        positives,
        len(arrays[LABEL_KEY]) - positives,
    )
    if positives == 0 or positives == len(arrays[LABEL_KEY]):
        raise ValueError(
            f"the success labels of {dataset.root} are all {'failures' if positives == 0 else 'successes'}: "
            "a classifier needs both (check --labels.source, --labels.last_k and --labels.failed_episodes)"
        )
    arrays[WEIGHT_KEY] = balanced_weights(arrays[LABEL_KEY])

    model = SuccessClassifierRewardModel(model_cfg)
    if model_cfg.backbone == "finetune" and model_cfg.pretrained_cnn:
        model.cnn.load_imagenet_weights()
    if model_cfg.backbone == "frozen":
        model.set_feature_statistics(arrays[FEATURES_KEY])
    model.to(model_cfg.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    count = len(arrays[LABEL_KEY])
    model.train()
    for step in range(1, cfg.steps + 1):
        index = rng.integers(0, count, size=min(cfg.batch_size, count))
        loss, logs = model(_batch(arrays, index, model_cfg.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            logger.info("step %d/%d loss %.4f accuracy %.3f", step, cfg.steps, logs["loss"], logs["accuracy"])

    eval_arrays = build_training_arrays(dataset, cfg, val) if val else arrays
    probs = predict_arrays(model, eval_arrays)
    labels = eval_arrays[LABEL_KEY]
    metrics = {
        "auroc": success_auroc(probs, labels),
        "accuracy": float(((probs >= model_cfg.threshold) == labels.astype(bool)).mean()),
        "frames": float(len(labels)),
        "on": "validation" if val else "training",
    }
    model.eval()
    return model, metrics


def main(argv: list[str]) -> int:
    """`rewardkit train --model.type=classifier [--flags]`: train, save, print the checkpoint path."""
    from rewardkit.cli_utils import announce, parse_config

    argv = [a for a in argv if not _is_classifier_type_flag(a)]
    cfg = parse_config(ClassifierTrainConfig, argv, "train")
    model, metrics = train_classifier(cfg)
    output = Path(cfg.output_dir)
    model.save_pretrained(output)
    atomic_write_text(output / "train_metrics.json", json.dumps(metrics, indent=2))
    logger.info("success-vs-failure AUROC on %s frames: %.3f", metrics["on"], metrics["auroc"])
    announce("checkpoint", output)
    return 0


def _is_classifier_type_flag(arg: str) -> bool:
    if not arg.startswith("--model.type"):
        return False
    value = arg.split("=", 1)[1] if "=" in arg else ""
    if value not in ("classifier", "rewardkit_classifier"):
        raise ValueError(f"{arg}: the classifier trainer only trains --model.type=classifier")
    return True
