"""`rewardkit viz`: plots (PNG) and videos (mp4) of a model's progress on a dataset's episodes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.cli_utils import ModelConfig, announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError

HELP = "plot progress per episode and over a dataset (PNG); --video=true writes an mp4 per episode"
logger = logging.getLogger(__name__)


@dataclass
class VizConfig:
    """Plot (and film) predicted progress. Give a model (`--model.path`) or a progress parquet (`--progress`).

    Args:
        dataset: the LeRobot dataset (`--dataset.root=...`, `--dataset.episodes=[0,1]` to pick episodes).
        model: the reward model to label with (`--model.path=CHECKPOINT`).
        progress_path: a progress parquet written by `rewardkit label` (instead of a model; no stage plot).
        output_dir: where the PNGs (and mp4s) go.
        video: also write an mp4 per episode: camera views side by side over a live progress graph.
        failed_episodes: indices of failed attempts (coloured apart in the overview).
        targets: draw the linear progress targets of successful episodes.
        stride: labelling stride when a model is given.
        overwrite: replace earlier plots (and videos) in `output_dir` (off: the run stops before any work).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    progress_path: str | None = None
    output_dir: str = "outputs/viz"
    video: bool = False
    failed_episodes: list[int] = field(default_factory=list)
    targets: bool = True
    stride: int = 1
    overwrite: bool = False


def main(argv: list[str]) -> int:
    cfg = parse_config(VizConfig, argv, "viz", HELP, renamed={"--progress": "--progress_path"})
    if bool(cfg.model.spec) == bool(cfg.progress_path):
        raise RewardkitError("give exactly one of --model.path=CHECKPOINT or --progress_path=PARQUET")

    from rewardkit.data.dataset import open_from_config
    from rewardkit.evaluation import ground_truth_from_dataset
    from rewardkit.io_utils import check_overwrite
    from rewardkit.viz import plot_progress, progress_plot_paths

    dataset = open_from_config(cfg.dataset)
    indices = dataset.episode_indices
    for path in progress_plot_paths(cfg.output_dir, [""], indices, cfg.video):
        check_overwrite(path, cfg.overwrite)
    if cfg.model.spec:
        from rewardkit.labelling import label_dataset

        model = cfg.model.load()
        predictions = {e.episode_index: e.outputs for e in label_dataset(model, dataset, stride=cfg.stride)}
        source = cfg.model.spec
    else:
        from rewardkit.labelling import check_progress, read_progress_parquet

        predictions, metadata = read_progress_parquet(cfg.progress_path, with_index=True)
        check_progress(cfg.progress_path, predictions, metadata, dataset=dataset)
        missing = [i for i in indices if i not in predictions]
        if missing:
            raise RewardkitError(f"{cfg.progress_path} has no progress for episode(s) {missing}")
        source = cfg.progress_path
    truths = ground_truth_from_dataset(dataset, cfg.failed_episodes)
    written = plot_progress(
        cfg.output_dir,
        dataset,
        {"": predictions},
        truths,
        indices,
        targets=cfg.targets,
        video=cfg.video,
        overview_titles={"": str(source)},
    )
    for _, path in written:
        kind = "video" if path.suffix == ".mp4" else "plot"
        announce("overview" if path.stem == "overview" else f"{path.stem.replace('_', ' ')} {kind}", path)
    return 0
