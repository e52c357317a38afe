"""`rewardkit viz`: plots (PNG) and videos (mp4) of a model's progress on a dataset's episodes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError

HELP = "plot progress per episode and over a dataset (PNG); --video=true writes an mp4 per episode"
logger = logging.getLogger(__name__)


@dataclass
class ModelPathConfig:
    """Args:
    path: a rewardkit model checkpoint folder or hub id (labels the episodes, stage probabilities included).
    device: where to run it (default: the checkpoint's device).
    """

    path: str | None = None
    device: str | None = None


@dataclass
class VizConfig:
    """Plot (and film) predicted progress. Give a model (`--model.path`) or a progress parquet (`--progress`).

    Args:
        dataset: the LeRobot dataset (`--dataset.root=...`, `--dataset.episodes=[0,1]` to pick episodes).
        model: the reward model to label with (`--model.path=CHECKPOINT`).
        progress: a progress parquet written by `rewardkit label` (instead of a model; no stage plot).
        output_dir: where the PNGs (and mp4s) go.
        video: also write an mp4 per episode: camera views side by side over a live progress graph.
        failed_episodes: indices of failed attempts (coloured apart in the overview).
        targets: draw the linear progress targets of successful episodes.
        stride: labelling stride when a model is given.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelPathConfig = field(default_factory=ModelPathConfig)
    progress: str | None = None
    output_dir: str = "outputs/viz"
    video: bool = False
    failed_episodes: list[int] = field(default_factory=list)
    targets: bool = True
    stride: int = 1


def main(argv: list[str]) -> int:
    cfg = parse_config(VizConfig, argv, "viz", HELP)
    if bool(cfg.model.path) == bool(cfg.progress):
        raise RewardkitError("give exactly one of --model.path=CHECKPOINT or --progress=PARQUET")

    from pathlib import Path

    from rewardkit.data.dataset import open_from_config
    from rewardkit.evaluation import ground_truth_from_dataset
    from rewardkit.viz import plot_episode, plot_overview, sample_frame_indices, write_episode_video

    dataset = open_from_config(cfg.dataset)
    episodes = dataset.episodes()
    if cfg.model.path:
        import rewardkit
        from rewardkit.labelling import label_dataset

        model = rewardkit.load(cfg.model.path, device=cfg.model.device)
        predictions = {e.episode_index: e.outputs for e in label_dataset(model, dataset, stride=cfg.stride)}
        source = cfg.model.path
    else:
        from rewardkit.labelling import read_progress_parquet

        predictions, _ = read_progress_parquet(cfg.progress)
        missing = [e.episode_index for e in episodes if e.episode_index not in predictions]
        if missing:
            raise RewardkitError(f"{cfg.progress} has no progress for episode(s) {missing}")
        source = cfg.progress
    truths = ground_truth_from_dataset(dataset, cfg.failed_episodes)
    output_dir = Path(cfg.output_dir)
    camera = dataset.camera_keys[0] if dataset.camera_keys else None
    for ep in episodes:
        index = ep.episode_index
        outputs = predictions[index]
        if len(outputs["progress"]) != ep.length:
            raise RewardkitError(
                f"episode {index}: {len(outputs['progress'])} progress values for {ep.length} frames"
            )
        truth = truths[index]
        target = truth.progress if cfg.targets else None
        frames = {cam: dataset.read_frames(index, cam) for cam in dataset.camera_keys} if camera else {}
        positions = sample_frame_indices(ep.length)
        outcome = "success" if truth.success else "failure"
        title = f"episode {index} ({outcome}): {ep.task}"
        path = plot_episode(
            output_dir / f"episode_{index}.png",
            outputs,
            target=target,
            true_stages=truth.stages,
            frames=frames[camera][positions] if camera else None,
            frame_indices=positions,
            title=title,
        )
        announce(f"episode {index} plot", path)
        if cfg.video:
            if not frames:
                raise RewardkitError(f"dataset {dataset.root} has no cameras to film")
            video = write_episode_video(
                output_dir / f"episode_{index}.mp4", frames, outputs["progress"], dataset.fps, target, title
            )
            announce(f"episode {index} video", video)
    curves = {e.episode_index: predictions[e.episode_index]["progress"] for e in episodes}
    success = {i: t.success for i, t in truths.items()}
    overview = plot_overview(output_dir / "overview.png", curves, success, title=f"{source}")
    announce("overview", overview)
    return 0
