"""`rewardkit weights`: the RA-BC weight distribution of a progress file, without training."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import check_overwrite
from rewardkit.rabc.report import plot_weights, weight_report, write_frame_weights, write_report_json
from rewardkit.rabc.weighter import RABCWeighter, local_dataset, resolve_progress_path

HELP = "RA-BC weights of a progress parquet: distribution overall and per episode, kappa suggestion, plot"
logger = logging.getLogger(__name__)


@dataclass
class WeightsConfig:
    """Args:
    progress_path: the progress parquet (index, episode_index, frame_index, progress_sparse[, progress_dense]),
        from `rewardkit label` or lerobot's compute_rabc_weights.
    chunk_size: Δ, the policy's action chunk size (ACT's default is 100).
    kappa: κ, deltas above it get weight 1.
    epsilon: ε in the soft weight's denominator 4σ + ε.
    head: which progress column: sparse or dense.
    nan_weight: weight of frames whose delta is NaN (1.0 trains on them as plain behaviour cloning).
    output_dir: where weights.json, weights.png and frame_weights.parquet go (default: a folder
        `<progress file stem>_weights` beside the progress file).
    dataset: the dataset the progress is for (`--dataset.root=PATH`); the file must fit its episodes.
        Default: the folder holding the progress file, when it is a LeRobot dataset (where `label` writes).
    overwrite: replace earlier weights.json / weights.png / frame_weights.parquet in `output_dir`.
    """

    progress_path: str = ""
    chunk_size: int = 100
    kappa: float = 0.01
    epsilon: float = 1e-6
    head: str = "sparse"
    nan_weight: float = 1.0
    output_dir: str | None = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    overwrite: bool = False


def main(argv: list[str]) -> int:
    cfg = parse_config(
        WeightsConfig,
        argv,
        "weights",
        HELP,
        renamed={"--progress": "--progress_path", "--head_mode": "--head"},
    )
    if not cfg.progress_path:
        raise RewardkitError("--progress_path=PATH (a progress parquet) is required")
    progress = resolve_progress_path(cfg.progress_path)
    out = Path(cfg.output_dir) if cfg.output_dir else progress.with_name(f"{progress.stem}_weights")
    outputs = {name: out / name for name in ("weights.json", "weights.png", "frame_weights.parquet")}
    for path in outputs.values():
        check_overwrite(path, cfg.overwrite)
    if cfg.dataset.root or cfg.dataset.repo_id:
        from rewardkit.data.dataset import open_from_config

        dataset = open_from_config(cfg.dataset)
    else:
        dataset = local_dataset(progress.parent)
        if dataset is None:
            logger.warning("%s not checked against a dataset; pass --dataset.root=PATH to check it", progress)
    weighter = RABCWeighter.from_file(
        progress,
        chunk_size=cfg.chunk_size,
        head_mode=cfg.head,
        kappa=cfg.kappa,
        epsilon=cfg.epsilon,
        nan_weight=cfg.nan_weight,
        dataset=dataset,
    )
    report = weight_report(weighter)
    o = report["overall"]
    print(
        f"{o['num_frames']} frames, {len(report['episodes'])} episodes, chunk {cfg.chunk_size}, "
        f"kappa {cfg.kappa:g}: mean weight {o['mean_weight']:.3f}, zero {o['zero_share']:.1%}, "
        f"full {o['full_share']:.1%}, NaN delta {o['nan_share']:.1%}; "
        f"delta mean {o['delta_mean']:.4g} std {o['delta_std']:.4g}"
    )
    print(weighter.suggest_kappa().describe())
    print(f"{'episode':>8} {'frames':>7} {'mean_w':>7} {'zero':>6} {'full':>6} {'delta':>8}")
    for e in report["episodes"]:
        delta = "nan" if e["delta_mean"] is None else f"{e['delta_mean']:.4f}"
        print(
            f"{e['episode_index']:>8} {e['num_frames']:>7} {e['mean_weight']:>7.3f} "
            f"{e['zero_share']:>6.1%} {e['full_share']:>6.1%} {delta:>8}"
        )
    announce("summary", write_report_json(report, outputs["weights.json"]))
    announce("plot", plot_weights(weighter, report, outputs["weights.png"]))
    announce("frame weights", write_frame_weights(weighter, outputs["frame_weights.parquet"], dataset))
    return 0
