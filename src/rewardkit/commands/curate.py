"""`rewardkit curate`: judge every episode from its progress curve; table, keep list, filtered dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.cli_utils import announce, parse_config
from rewardkit.curation.quality import CurationThresholds
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError

HELP = "per-episode quality table (keep / look / drop, with reasons) from a progress parquet; keep list, filtered dataset"


@dataclass
class CurateConfig:
    """Args:
    progress_path: the progress parquet (`rewardkit label`), default `<dataset root>/sarm_progress.parquet`.
    dataset: the dataset it was labelled from (`--dataset.root=PATH`); only read, never modified.
    head: which progress column: sparse or dense.
    output_dir: where curation.csv, curation.json and curation.html go (outside the dataset: it is never
        modified).
    thresholds: the verdict rules (`--thresholds.failure_progress=0.5`, `--thresholds.stall_look_seconds=2`,
        ...; see `rewardkit.curation.CurationThresholds`).
    keep_verdicts: which verdicts are kept in the keep list, the filtered dataset and the weights.
    keep_list: also write the kept episodes as a JSON list, usable as `--dataset.episodes="$(cat FILE)"`.
    filtered_output: also write a NEW dataset holding only the kept episodes (lerobot's dataset tools).
    filtered_repo_id: the new dataset's repo id (default `<repo id>_curated`).
    weights_output: also write a weights parquet (weight 1 for kept episodes' frames, 0 for the others),
        for `rewardkit train-policy --sample_weighting.type=precomputed --sample_weighting.progress_path=...`.
    overwrite: replace earlier outputs (off: the run stops before any work).
    """

    progress_path: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    head: str = "sparse"
    output_dir: str = "outputs/curation"
    thresholds: CurationThresholds = field(default_factory=CurationThresholds)
    keep_verdicts: list[str] = field(default_factory=lambda: ["keep", "look"])
    keep_list: str | None = None
    filtered_output: str | None = None
    filtered_repo_id: str | None = None
    weights_output: str | None = None
    overwrite: bool = False


def main(argv: list[str]) -> int:
    cfg = parse_config(CurateConfig, argv, "curate", HELP)
    from rewardkit.curation import (
        curate_dataset,
        curation_output_paths,
        write_curation,
        write_filtered_dataset,
        write_keep_list,
    )
    from rewardkit.data.dataset import open_from_config
    from rewardkit.io_utils import check_overwrite
    from rewardkit.rabc.weighter import default_progress_path

    unknown = sorted(set(cfg.keep_verdicts) - {"keep", "look", "drop"})
    if unknown or not cfg.keep_verdicts:
        raise RewardkitError(
            f"--keep_verdicts must be a non-empty subset of [keep, look, drop], got {unknown}"
        )
    if not (cfg.dataset.root or cfg.dataset.repo_id):
        raise RewardkitError(
            "--dataset.root=PATH (the dataset the progress file was labelled from) is required"
        )
    progress = Path(cfg.progress_path or default_progress_path(cfg.dataset.root, cfg.dataset.repo_id))
    output_dir = Path(cfg.output_dir)
    outputs = [
        *curation_output_paths(output_dir).values(),
        cfg.keep_list,
        cfg.filtered_output,
        cfg.weights_output,
    ]
    for path in filter(None, outputs):
        check_overwrite(path, cfg.overwrite)

    dataset = open_from_config(cfg.dataset)
    report = curate_dataset(progress, dataset, cfg.thresholds, cfg.head)
    counts = report.counts()
    print(
        f"{len(report.episodes)} episodes: {counts['keep']} keep, {counts['look']} look, {counts['drop']} drop"
    )
    print(f"{'episode':>8} {'verdict':>7} {'final':>6} {'time':>7}  reason")
    for q in report.episodes:
        done = "-" if q.metrics.time_to_completion_s is None else f"{q.metrics.time_to_completion_s:.1f}s"
        print(f"{q.episode_index:>8} {q.verdict:>7} {q.metrics.final_progress:>6.2f} {done:>7}  {q.reason}")
    for name, path in write_curation(report, output_dir, cfg.overwrite).items():
        announce(name.rsplit(".", 1)[1], path)
    keep = report.episodes_with(*cfg.keep_verdicts)
    if cfg.keep_list:
        announce("keep list", write_keep_list(cfg.keep_list, keep, cfg.overwrite))
    if cfg.weights_output:
        from rewardkit.curation import write_verdict_weights

        announce("weights", write_verdict_weights(report, dataset, cfg.weights_output, cfg.keep_verdicts))
    if cfg.filtered_output:
        path = write_filtered_dataset(dataset, keep, cfg.filtered_output, cfg.filtered_repo_id, cfg.overwrite)
        announce(f"filtered dataset ({len(keep)} episodes)", path)
    return 0
