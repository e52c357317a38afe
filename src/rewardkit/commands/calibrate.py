"""`rewardkit calibrate`: the online monitor's completion threshold and hold time from held-out episodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError
from rewardkit.online.calibration import CALIBRATION_FILENAME, DEFAULT_HOLD_FRAMES

HELP = "choose the RewardMonitor's completion threshold and hold (ROC over held-out episodes with outcomes)"


@dataclass
class CalibrateConfig:
    """Args:
    progress_path: the progress parquet of the held-out episodes (`rewardkit label`), default
        `<dataset root>/sarm_progress.parquet`.
    dataset: the dataset; `--dataset.episodes=[...]` selects the held-out episodes (default: all in the file).
    failed_episodes: indices of failed attempts, besides those the dataset marks itself (`failure_column`,
        `rewardkit sim`'s kinds, keyframes).
    failure_column: a per-episode boolean column of meta/episodes that marks failed episodes.
    head: which progress column: sparse or dense.
    max_false_rate: the share of failed episodes on which completion may fire (default 1%).
    hold_frames: the holds tried, in consecutive frames.
    model_path: the model the progress came from; the calibration is saved beside it (default: the
        `reward_model_path` the progress file records, when that is a local folder).
    output: where to write the calibration instead (a .json file).
    overwrite: replace an earlier calibration file.
    """

    progress_path: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    failed_episodes: list[int] = field(default_factory=list)
    failure_column: str | None = None
    head: str = "sparse"
    max_false_rate: float = 0.01
    hold_frames: list[int] = field(default_factory=lambda: list(DEFAULT_HOLD_FRAMES))
    model_path: str | None = None
    output: str | None = None
    overwrite: bool = False


def _model_folder(progress_path: Path, explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    from rewardkit.labelling.parquet import read_progress_parquet

    recorded = read_progress_parquet(progress_path)[1].get("reward_model_path")
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def main(argv: list[str]) -> int:
    cfg = parse_config(CalibrateConfig, argv, "calibrate", HELP)
    from rewardkit.curation import calibrate_from_progress
    from rewardkit.data.dataset import open_from_config
    from rewardkit.io_utils import check_overwrite
    from rewardkit.online.calibration import save_calibration
    from rewardkit.rabc.weighter import default_progress_path

    if not (cfg.dataset.root or cfg.dataset.repo_id):
        raise RewardkitError("--dataset.root=PATH (the held-out episodes' dataset) is required")
    progress = Path(cfg.progress_path or default_progress_path(cfg.dataset.root, cfg.dataset.repo_id))
    if not progress.is_file():
        raise RewardkitError(f"progress parquet {progress} not found (write one with `rewardkit label`)")
    if cfg.output:
        output = Path(cfg.output)
    else:
        folder = _model_folder(progress, cfg.model_path)
        if folder is None:
            raise RewardkitError(
                f"cannot tell which model {progress} came from; pass --model_path=CHECKPOINT (the calibration "
                "is saved beside it) or --output=FILE.json"
            )
        output = folder / CALIBRATION_FILENAME
    check_overwrite(output, cfg.overwrite)
    dataset = open_from_config(cfg.dataset)
    calibration = calibrate_from_progress(
        progress,
        dataset,
        cfg.failed_episodes,
        cfg.failure_column,
        cfg.head,
        cfg.max_false_rate,
        cfg.hold_frames,
    )
    print(calibration.describe())
    for hold in calibration.holds:
        print(
            f"  hold {hold['hold_frames']:>3} frames: threshold {hold['threshold']:.3f}, "
            f"detects {hold['detection_rate']:.0%}, false {hold['false_rate']:.0%}"
        )
    announce("calibration", save_calibration(calibration, output))
    return 0
