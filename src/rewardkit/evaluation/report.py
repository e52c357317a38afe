"""The evaluation report: a JSON with every number and a self-contained HTML page (images embedded).

The HTML has no script and no external resource (images are base64 data URIs), so it opens anywhere,
offline, as a single file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardkit.evaluation.evaluate import CONSTANT_BASELINE, ELAPSED_BASELINE
from rewardkit.io_utils import atomic_write_text

TIME_BASELINE_NOTE = (
    "A predictor of pure time (the elapsed-fraction baseline, progress = t / (T - 1)) scores a perfect VOC "
    "of 1.0 on every successful episode without looking at a single frame, so VOC on successful episodes "
    "does not show that a model watches the task. What a model adds over time shows in the failure "
    "columns: failure AUROC (does its final progress tell failed attempts from successful ones; both "
    "baselines score 0.5) and failure MAE (does its curve follow a failed attempt's progress instead of "
    "rising regardless)."
)

SUMMARY_COLUMNS = (
    ("voc_success_mean", "VOC success (mean)"),
    ("voc_success_std", "VOC success (std)"),
    ("voc_failure_mean", "VOC failure (mean)"),
    ("voc_mean", "VOC all (mean)"),
    ("voc_std", "VOC all (std)"),
    ("mae_success", "MAE success"),
    ("mae_failure", "MAE failure"),
    ("final_progress_auroc", "failure AUROC (final progress)"),
    ("stage_accuracy", "stage accuracy"),
)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _image_tag(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


BY_KIND_COLUMNS = (
    ("final_progress_auroc", "AUROC vs successes"),
    ("final_progress_mean", "final progress (mean)"),
    ("margin", "worst success - best failure"),
    ("mae_failure", "MAE (current progress)"),
    ("mae_failure_reached", "MAE (progress reached)"),
)


def _by_kind_html(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The failure-kind breakdown table and the failure-MAE notes (nothing when no kind is known)."""
    e = html.escape
    parts = [
        f'<p class="note">{e(n)}</p>'
        for n in {r["summary"].get("failure_mae_note") for r in results.values()}
        if n
    ]
    if not any(r["summary"].get("by_kind") for r in results.values()):
        return parts
    parts.append("<h2>By failure kind</h2><table><tr><th>model</th><th>kind (episodes)</th>")
    parts.append("".join(f"<th>{e(label)}</th>" for _, label in BY_KIND_COLUMNS) + "</tr>")
    for name, result in results.items():
        for kind, row in result["summary"].get("by_kind", {}).items():
            cells = "".join(f"<td>{_format(row.get(key))}</td>" for key, _ in BY_KIND_COLUMNS)
            parts.append(f"<tr><td>{e(name)}</td><td>{e(kind)} ({row['num_episodes']})</td>{cells}</tr>")
    parts.append("</table>")
    return parts


def calibration_section(calibration: Any) -> str:
    """HTML: the ROC of a calibration (`rewardkit.online.calibration.Calibration`) with the chosen point
    marked, and the chosen rule with its rates per hold tried."""
    from rewardkit.viz.plots import _pyplot

    e = html.escape
    roc = calibration.roc
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(4.5, 4))
    try:
        ax.step(roc["false_rate"], roc["detection_rate"], where="post", color="#2E86AB")
        ax.plot([calibration.false_rate], [calibration.detection_rate], "o", color="#D1495B",
                label=f"chosen: threshold {calibration.complete_threshold:.3f}")  # fmt: skip
        ax.axvline(calibration.max_false_rate, color="#999999", linestyle=":", label="accepted false rate")
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="false-completion rate (failed episodes)",
               ylabel="detection rate (successful episodes)",
               title=f"completion ROC, hold {calibration.hold_frames} frames")  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
        buffer = io.BytesIO()
        figure.savefig(buffer, dpi=80, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    rows = "".join(
        f"<tr><td>{h['hold_frames']}</td><td>{h['threshold']:.3f}</td><td>{h['detection_rate']:.3f}</td>"
        f"<td>{h['false_rate']:.3f}</td></tr>"
        for h in calibration.holds
    )
    return (
        "<h2>Success detection (calibration)</h2>"
        f"<p>{e(calibration.describe())}</p>"
        f'<figure><img src="data:image/png;base64,{data}" alt="completion ROC">'
        "<figcaption>completion ROC over episodes; the dot is the chosen point</figcaption></figure>"
        "<table><tr><th>hold (frames)</th><th>threshold</th><th>detection rate</th><th>false rate</th></tr>"
        f"{rows}</table>"
    )


def render_html(
    results: Mapping[str, Mapping[str, Any]],
    images: Sequence[tuple[str, Path]],
    title: str,
    context: Mapping[str, Any],
    calibration: Any = None,
) -> str:
    """The report page: context, the time-baseline note, the summary table, per-episode tables, the
    calibration's ROC and chosen point (when given), images."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1300px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}tr.baseline{color:#666;font-style:italic}"
        ".note{background:#fff6d6;border-left:4px solid #e0a800;padding:.6em 1em}"
        "img{max-width:100%}figure{margin:1em 0}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<ul>" + "".join(f"<li><b>{e(str(k))}</b>: {e(str(v))}</li>" for k, v in context.items()) + "</ul>",
        f'<p class="note"><b>Read this first.</b> {e(TIME_BASELINE_NOTE)}</p>',
        "<h2>Summary</h2><table><tr><th>model</th><th>episodes (failed)</th>"
        + "".join(f"<th>{e(label)}</th>" for _, label in SUMMARY_COLUMNS)
        + "</tr>",
    ]
    for name, result in results.items():
        summary = result["summary"]
        css = ' class="baseline"' if name in (ELAPSED_BASELINE, CONSTANT_BASELINE) else ""
        cells = "".join(f"<td>{_format(summary.get(key))}</td>" for key, _ in SUMMARY_COLUMNS)
        parts.append(
            f"<tr{css}><td>{e(name)}</td><td>{summary['num_episodes']} ({summary['num_failed']})</td>{cells}</tr>"
        )
    parts.append("</table>")
    parts.extend(_by_kind_html(results))
    parts.append("<h2>Per episode</h2>")
    for name, result in results.items():
        parts.append(f"<h3>{e(name)}</h3><table><tr><th>episode</th><th>length</th><th>outcome</th>")
        parts.append("<th>VOC</th><th>final progress</th><th>MAE</th><th>stage accuracy</th></tr>")
        for row in result["episodes"]:
            parts.append(
                f"<tr><td>{row['episode_index']}</td><td>{row['length']}</td>"
                f"<td>{'success' if row['success'] else 'failure'}</td><td>{_format(row['voc'])}</td>"
                f"<td>{_format(row['final_progress'])}</td><td>{_format(row['mae'])}</td>"
                f"<td>{_format(row['stage_accuracy'])}</td></tr>"
            )
        parts.append("</table>")
    if calibration is not None:
        parts.append(calibration_section(calibration))
    if images:
        parts.append("<h2>Plots</h2>")
        parts.extend(_image_tag(path, caption) for caption, path in images)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    output_dir: str | Path,
    results: Mapping[str, Mapping[str, Any]],
    images: Sequence[tuple[str, Path]] = (),
    title: str = "rewardkit evaluation",
    context: Mapping[str, Any] | None = None,
    calibration: Any = None,
) -> tuple[Path, Path]:
    """Write `eval.json` (every number) and `report.html` (self-contained) into `output_dir`.

    `results`: {model name: evaluate_predictions(...)}; `images`: (caption, PNG path) pairs to embed;
    `calibration`: a `Calibration` whose ROC and chosen point the report shows (and eval.json holds).
    Returns (json path, html path).
    """
    output_dir = Path(output_dir)
    context = dict(context or {})
    payload = {
        "title": title,
        "context": context,
        "note": TIME_BASELINE_NOTE,
        "models": results,
        "images": [{"caption": c, "file": str(p)} for c, p in images],
    }
    if calibration is not None:
        from dataclasses import asdict

        payload["calibration"] = asdict(calibration)
    json_path = atomic_write_text(output_dir / "eval.json", json.dumps(_clean(payload), indent=2))
    html_path = atomic_write_text(
        output_dir / "report.html", render_html(results, images, title, context, calibration)
    )
    return json_path, html_path
