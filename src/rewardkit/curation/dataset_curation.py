"""Curating a dataset from its progress parquet: the quality table (CSV, JSON, HTML), the keep list, and a
new filtered dataset written with lerobot's own dataset tools. The source dataset is only ever read.

The library entry points (also what `rewardkit demo` calls):
- `curate_dataset(progress_path, dataset)` -> `CurationReport` (the judged episodes, worst first);
- `write_curation(report, output_dir)` -> the CSV / JSON / HTML files;
- `write_keep_list(path, episodes)` and `write_filtered_dataset(dataset, episodes, output_dir)`.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.curation.quality import CurationThresholds, EpisodeQuality, curate
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_folder, atomic_write_text, check_overwrite

logger = logging.getLogger(__name__)

OUTPUT_FILES = ("curation.csv", "curation.json", "curation.html")
COLUMNS = (
    "episode_index",
    "verdict",
    "reason",
    "num_frames",
    "duration_s",
    "final_progress",
    "max_progress",
    "time_to_completion_s",
    "num_regressions",
    "deepest_regression",
    "longest_stall_s",
    "monotonicity",
    "outlier_score",
)


@dataclass
class CurationReport:
    """The judged episodes of one progress file.

    Args:
        episodes: `EpisodeQuality` per episode, worst first.
        curves: {episode_index: progress (T,)} as read.
        frame_index: {episode_index: global frame indices (T,)} (the `index` column).
        fps: the dataset's frame rate.
        thresholds: the rules used.
        progress_path: the progress parquet read.
        dataset_root: the dataset it belongs to.
        head: "sparse" or "dense".
    """

    episodes: list[EpisodeQuality]
    curves: dict[int, np.ndarray]
    frame_index: dict[int, np.ndarray]
    fps: float
    thresholds: CurationThresholds
    progress_path: str
    dataset_root: str
    head: str = "sparse"

    def episodes_with(self, *verdicts: str) -> list[int]:
        """Sorted indices of the episodes whose verdict is one of `verdicts`."""
        return sorted(q.episode_index for q in self.episodes if q.verdict in verdicts)

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns: `COLUMNS`, and "disagreement" when the progress came from an ensemble."""
        has_disagreement = any(q.disagreement is not None for q in self.episodes)
        return (*COLUMNS, "disagreement") if has_disagreement else COLUMNS

    def counts(self) -> dict[str, int]:
        """{verdict: number of episodes}."""
        return {v: sum(q.verdict == v for q in self.episodes) for v in ("keep", "look", "drop")}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: where it came from, the rules, the counts and one row per episode (worst first)."""
        return {
            "progress_path": self.progress_path,
            "dataset_root": self.dataset_root,
            "head": self.head,
            "fps": self.fps,
            "thresholds": asdict(self.thresholds),
            "counts": self.counts(),
            "episodes": [q.as_row() for q in self.episodes],
        }


def curate_dataset(
    progress_path: str | Path,
    dataset: Any,
    thresholds: CurationThresholds | None = None,
    head: str = "sparse",
) -> CurationReport:
    """Read `progress_path`, check it fits `dataset` (a `RewardDataset`), and judge every episode in it.

    Raises:
        RewardkitError: the file does not fit the dataset, lacks the head's column, or is all NaN.
    """
    from rewardkit.rabc.weighter import ProgressTable

    table = ProgressTable.from_file(progress_path, head, dataset)  # the file's one read
    order = np.lexsort((table.index, table.episode_index))
    episodes, starts = np.unique(table.episode_index[order], return_index=True)
    bounds = [*starts.tolist(), order.size]
    curves, frame_index = {}, {}
    # an ensemble's progress: each episode's mean progress_std, its members' disagreement
    disagreement = None if table.progress_std is None else {}
    for k, episode in enumerate(episodes.tolist()):
        rows = order[bounds[k] : bounds[k + 1]]
        curves[episode] = table.progress[rows]
        frame_index[episode] = table.index[rows]
        if disagreement is not None:
            disagreement[episode] = float(table.progress_std[rows].sum() / rows.size)
    thresholds = thresholds or CurationThresholds()
    fps = float(dataset.fps)
    return CurationReport(
        episodes=curate(curves, fps, thresholds, disagreement),
        curves=curves,
        frame_index=frame_index,
        fps=fps,
        thresholds=thresholds,
        progress_path=str(table.path),
        dataset_root=str(dataset.root),
        head=head,
    )


def curation_output_paths(output_dir: str | Path) -> dict[str, Path]:
    """{file name: path} of the files `write_curation` writes into `output_dir`."""
    return {name: Path(output_dir) / name for name in OUTPUT_FILES}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if np.isfinite(value) else "nan"
    return str(value)


def _curve_png(report: CurationReport, quality: EpisodeQuality) -> str:
    """The episode's progress curve as a base64 PNG, thresholds drawn."""
    from rewardkit.viz.plots import _pyplot

    plt = _pyplot()
    curve = report.curves[quality.episode_index]
    seconds = np.arange(curve.size) / report.fps
    figure, ax = plt.subplots(figsize=(6, 2.4))
    try:
        ax.plot(seconds, curve, color="#2E86AB")
        ax.plot(seconds, np.maximum.accumulate(np.nan_to_num(curve, nan=0.0)), ":", color="#999999")
        ax.axhline(report.thresholds.success_progress, color="#28A745", linewidth=0.8)
        ax.axhline(report.thresholds.failure_progress, color="#D1495B", linewidth=0.8)
        ax.set(ylim=(-0.05, 1.05), xlabel="seconds", ylabel="progress")
        ax.set_title(f"episode {quality.episode_index}: {quality.verdict} ({quality.reason})", fontsize=8)
        buffer = io.BytesIO()
        figure.savefig(buffer, dpi=80, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def render_curation_html(report: CurationReport, max_curves: int = 50) -> str:
    """The curation page (the evaluation report's style: self-contained, no script): the rules, the
    table worst first, and the curve of each flagged episode (up to `max_curves`)."""
    e = html.escape
    counts = report.counts()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        "<title>rewardkit curation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1300px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td.reason,th.reason{text-align:left;min-width:24em}tr.drop{background:#fde2e4}tr.look{background:#fff6d6}"
        "img{max-width:100%}figure{margin:1em 0}</style></head><body>",
        "<h1>rewardkit curation</h1>",
        "<ul>"
        + "".join(
            f"<li><b>{e(k)}</b>: {e(str(v))}</li>"
            for k, v in (
                ("dataset", report.dataset_root),
                ("progress", f"{report.progress_path} ({report.head})"),
                (
                    "episodes",
                    f"{len(report.episodes)}: {counts['keep']} keep, {counts['look']} look, "
                    f"{counts['drop']} drop",
                ),  # fmt: skip
                ("rules", ", ".join(f"{k}={v:g}" for k, v in asdict(report.thresholds).items())),
            )
        )
        + "</ul>",
        "<table><tr>" + "".join(f'<th class="{c}">{e(c)}</th>' for c in report.columns) + "</tr>",
    ]
    for quality in report.episodes:
        row = quality.as_row()
        parts.append(
            f'<tr class="{quality.verdict}">'
            + "".join(f'<td class="{c}">{e(_format(row.get(c)))}</td>' for c in report.columns)
            + "</tr>"
        )
    parts.append("</table>")
    flagged = [q for q in report.episodes if q.verdict != "keep"]
    if flagged:
        parts.append("<h2>Flagged episodes</h2>")
        for quality in flagged[:max_curves]:
            caption = f"episode {quality.episode_index}: {quality.verdict}, {quality.reason}"
            parts.append(
                f'<figure><img src="data:image/png;base64,{_curve_png(report, quality)}" alt="{e(caption)}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
        if len(flagged) > max_curves:
            parts.append(f"<p>{len(flagged) - max_curves} more flagged episodes: see curation.csv</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_curation(
    report: CurationReport, output_dir: str | Path, overwrite: bool = False
) -> dict[str, Path]:
    """Write curation.csv, curation.json and curation.html into `output_dir`, each atomically.

    Raises:
        RewardkitError: one of them exists and not `overwrite` (checked before anything is written).
    """
    paths = curation_output_paths(output_dir)
    for path in paths.values():
        check_overwrite(path, overwrite)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(report.columns), lineterminator="\n")
    writer.writeheader()
    for quality in report.episodes:
        row = quality.as_row()
        writer.writerow({c: _format(row.get(c)) for c in report.columns})
    atomic_write_text(paths["curation.csv"], text.getvalue())
    atomic_write_text(paths["curation.json"], json.dumps(_json_safe(report.as_dict()), indent=2))
    atomic_write_text(paths["curation.html"], render_curation_html(report))
    return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_keep_list(path: str | Path, episodes: list[int], overwrite: bool = False) -> Path:
    """Write `episodes` as `[0, 2, 5]`, the form `--dataset.episodes` takes:
    `--dataset.episodes="$(cat keep.json)"`."""
    check_overwrite(path, overwrite)
    return atomic_write_text(path, json.dumps(sorted(int(e) for e in episodes)) + "\n")


def write_filtered_dataset(
    dataset: Any,
    keep: list[int],
    output_dir: str | Path,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """A new LeRobot dataset at `output_dir` holding exactly the episodes `keep` of `dataset` (a
    `RewardDataset`), renumbered 0..K-1, written by lerobot's `dataset_tools.delete_episodes`.

    The source is only read. The new dataset is built in a temporary folder beside `output_dir` and moved
    into place when complete, so a crash leaves no half dataset at `output_dir`.

    Raises:
        RewardkitError: nothing to keep, an episode not in the dataset, or `output_dir` exists and not
            `overwrite`, or lies inside the source dataset.
    """
    from lerobot.datasets.dataset_tools import delete_episodes
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    output_dir = Path(output_dir).resolve()
    source_root = Path(dataset.root).resolve()
    check_overwrite(output_dir, overwrite)
    if output_dir == source_root or source_root in output_dir.parents:
        raise RewardkitError(f"--filtered_output {output_dir} lies inside the source dataset {source_root}")
    # every episode of the dataset, whatever its selection: the ones not kept are deleted from the copy
    all_episodes = set(dataclasses.replace(dataset, selected_episodes=None).episode_indices)
    keep = sorted({int(e) for e in keep})
    if not keep:
        raise RewardkitError(f"no episode of {source_root} is kept; nothing to write to {output_dir}")
    unknown = sorted(set(keep) - all_episodes)
    if unknown:
        raise RewardkitError(f"episodes {unknown} to keep are not episodes of {source_root}")
    delete = sorted(all_episodes - set(keep))
    name = repo_id or f"{dataset.repo_id}_curated"

    def write(target: Path) -> None:
        if delete:
            source = LeRobotDataset(repo_id=str(dataset.repo_id), root=source_root)
            delete_episodes(source, delete, output_dir=target, repo_id=name)
        else:  # lerobot's tool refuses an empty deletion; keeping everything is a plain copy
            shutil.copytree(source_root, target)

    atomic_write_folder(output_dir, write)
    logger.info("wrote %s: %d of %d episodes of %s", output_dir, len(keep), len(all_episodes), source_root)
    return output_dir


def write_verdict_weights(
    report: CurationReport,
    dataset: Any,
    path: str | Path,
    keep_verdicts: list[str] | tuple[str, ...] = ("keep", "look"),
) -> Path:
    """A weights parquet from the verdicts: 1 for every frame of an episode whose verdict is in
    `keep_verdicts`, 0 for the others; the provenance names the curation, its rules and the dataset."""
    from rewardkit.labelling.parquet import dataset_fingerprint
    from rewardkit.rabc.frame_weights import verdict_weights, write_weights_parquet

    weights = {v: 1.0 if v in keep_verdicts else 0.0 for v in ("keep", "look", "drop")}
    index, episode, weight = verdict_weights(
        {q.episode_index: q.verdict for q in report.episodes}, report.frame_index, weights
    )
    provenance = {
        "source": "curation",
        "progress_path": report.progress_path,
        "head": report.head,
        "verdict_weights": weights,
        "thresholds": asdict(report.thresholds),
        "dataset": dataset_fingerprint(dataset),
    }
    return write_weights_parquet(path, index, weight, provenance, extra_columns={"episode_index": episode})


def calibrate_from_progress(
    progress_path: str | Path,
    dataset: Any,
    failed_episodes: list[int] | tuple[int, ...] = (),
    failure_column: str | None = None,
    head: str = "sparse",
    max_false_rate: float = 0.01,
    hold_frames: list[int] | tuple[int, ...] = (1, 2, 3, 5, 8, 10, 15, 20, 30),
):
    """A `Calibration` from a progress parquet and the outcomes the dataset (and `failed_episodes`) give.

    Only the episodes both in the file and in `dataset`'s selection are used. Returns a
    `rewardkit.online.calibration.Calibration` (save it with `save_calibration`).
    """
    import dataclasses

    from rewardkit.evaluation import ground_truth_from_dataset
    from rewardkit.online.calibration import calibrate

    report = curate_dataset(progress_path, dataset, head=head)
    selected = set(dataset.episode_indices) & set(report.curves)
    if not selected:
        raise RewardkitError(
            f"no episode of {progress_path} is among the selected episodes of {dataset.root}"
        )
    subset = dataclasses.replace(dataset, selected_episodes=sorted(selected))
    truths = ground_truth_from_dataset(
        subset, failed_episodes, failure_column=failure_column, stage_scheme=None
    )
    return calibrate(
        {e: report.curves[e] for e in selected},
        {e: bool(truths[e].success) for e in selected},
        fps=report.fps,
        max_false_rate=max_false_rate,
        hold_frames=hold_frames,
        signal="progress",
        source={"progress_path": report.progress_path, "head": head, "dataset": report.dataset_root},
    )
