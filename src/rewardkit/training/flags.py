"""The flags every reward-model recipe shares, defined once: the dataset, where outputs and the feature
cache go, failed episodes, the validation episodes.

Each recipe's train config extends `RewardTrainingConfig`, so `--failed_episodes`, `--failure_column`,
`--val_episodes` / `--val_fraction` and `--cache_dir` mean the same for every `--model.type`. Old
spellings (`DEPRECATED_FLAGS`: `--labels.failed_episodes`, `--model.failed_episodes`) still work for one
release: `rewardkit train` rewrites them to the new flag with a warning naming it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.data.dataset import DatasetConfig, DatasetError, RewardDataset
from rewardkit.training.trainer import TrainingConfig, split_episodes

logger = logging.getLogger(__name__)

# old flag -> the shared flag that replaces it (accepted until the next release).
DEPRECATED_FLAGS = {
    "--labels.failed_episodes": "--failed_episodes",
    "--model.failed_episodes": "--failed_episodes",
}


@dataclass
class RewardTrainingConfig(TrainingConfig):
    """What every reward-model recipe reads besides how to train (CLI: top-level flags of `rewardkit train`).

    Args:
        dataset: The LeRobot dataset (`--dataset.root` / `--dataset.repo_id` / `--dataset.episodes`).
        output_dir: Where checkpoints go (`<output_dir>/checkpoints/<step>/pretrained_model`).
        cache_dir: Root of feature caches (default `$REWARDKIT_CACHE` or ~/.cache/rewardkit/features).
        failed_episodes: Episode indices that failed (their targets never reach success); also read from
            `failure_column` and the dataset's meta/keyframes.json ("failed" list, drops). Episodes outside
            `--dataset.episodes` are ignored, with a warning naming them.
        failure_frames: The frame (within the episode, 0 included) where each of `failed_episodes` failed,
            in the same order; without it the frame is unknown (weak targets: they end just below 1).
        failure_column: A per-episode column of meta/episodes marking failed episodes (true = failed).
        failure_frame_column: A per-episode integer column of meta/episodes: the frame where the episode
            failed (null or negative: it did not).
        val_episodes: Episodes held out for validation (default: `val_fraction` of the chosen episodes).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output_dir: str = "outputs/train"
    cache_dir: str | None = None
    failed_episodes: list[int] | None = None
    failure_frames: list[int] | None = None
    failure_column: str | None = None
    failure_frame_column: str | None = None
    val_episodes: list[int] | None = None


def find_failed_episodes(dataset: RewardDataset, cfg: RewardTrainingConfig) -> dict[int, int | None]:
    """{failed episode: failure frame or None} among the chosen episodes, from `--failed_episodes`, the
    failure column and the keyframes file. Named episodes outside the selection are ignored, with a warning
    naming them (a typo or a stale list would otherwise change nothing without a word)."""
    from rewardkit.data import annotations as io

    chosen = set(dataset.episode_indices)
    named = [int(e) for e in cfg.failed_episodes or ()]
    if cfg.failure_frames is not None and len(cfg.failure_frames) != len(named):
        raise DatasetError(
            f"--failure_frames has {len(cfg.failure_frames)} frames for {len(named)} --failed_episodes; "
            "give one frame per failed episode, in the same order"
        )
    frames = dict(zip(named, cfg.failure_frames or [None] * len(named), strict=True))
    explicit = sorted(frames)
    outside = [e for e in explicit if e not in chosen]
    if outside:
        logger.warning("episodes %s are marked failed but not in --dataset.episodes; ignored", outside)
    keyframes_path = dataset.root / io.KEYFRAMES_FILE
    keyframes = io.read_keyframes(keyframes_path, fps=dataset.fps) if keyframes_path.exists() else None
    failed = io.failed_episodes(
        dataset.root,
        explicit={e: frames[e] for e in explicit if e in chosen},
        column=cfg.failure_column,
        keyframes=keyframes,
        frame_column=cfg.failure_frame_column,
    )
    return {e: frame for e, frame in failed.items() if e in chosen}


def validation_split(
    episodes: list[int], cfg: RewardTrainingConfig, root: object = ""
) -> tuple[list[int], list[int]]:
    """(training episodes, validation episodes) of `episodes`: `--val_episodes` when given (each must be
    one of `episodes`), else a seeded `--val_fraction` of them. Logs which episodes are held out and how to
    change it, since holding out some of the user's chosen episodes changes what is trained on."""
    if cfg.val_episodes:
        val = sorted({int(e) for e in cfg.val_episodes})
        unknown = [e for e in val if e not in episodes]
        if unknown:
            raise DatasetError(
                f"--val_episodes {unknown} are not among the training episodes of {root} ({len(episodes)} "
                "chosen with --dataset.episodes, failed ones excluded unless trained on)"
            )
        train = [e for e in episodes if e not in set(val)]
    else:
        train, val = split_episodes(list(episodes), cfg.val_fraction, cfg.seed)
    if not train:
        raise DatasetError(f"no training episodes left in {root} after holding out {val} for validation")
    if val:
        how = "--val_episodes" if cfg.val_episodes else f"--val_fraction={cfg.val_fraction}"
        logger.info(
            "holding out episodes %s for validation (%s); train on every chosen episode with "
            "--val_fraction=0, or choose them with --val_episodes=[...]",
            val,
            how,
        )
    return train, val


def check_numeric_inputs(dataset: RewardDataset, use_state: bool, columns: list[str] | tuple = ()) -> None:
    """Before anything slow: the state column exists when the model reads it (no silent switch to
    `use_state=false`), and the numeric columns the model reads hold no NaN/inf (`check_finite` names the
    column and episodes; otherwise training would only say "loss is nan")."""
    from lerobot.utils.constants import OBS_STATE

    keys = list(columns)
    if use_state:
        if OBS_STATE not in dataset.features:
            raise DatasetError(
                f"dataset {dataset.root} has no '{OBS_STATE}' column, but the model reads it; train "
                "without the robot state with --model.use_state=false"
            )
        keys.insert(0, OBS_STATE)
    if keys:
        dataset.check_finite(keys)
