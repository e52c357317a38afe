"""`rewardkit demo`: the whole pipeline on the bundled metaworld dataset (the library's `rewardkit.demo`)."""

from __future__ import annotations

from rewardkit.cli_utils import announce, parse_config
from rewardkit.demo import AUROC_TARGET, VOC_TARGET, DemoConfig, run_demo

HELP = "run the whole pipeline on the bundled metaworld dataset (offline, CPU, a few minutes)"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str]) -> int:
    cfg = parse_config(DemoConfig, argv, "demo", HELP)
    summary = run_demo(cfg)
    print(
        f"held-out episodes: {len(summary['held_out_episodes'])}; time {summary['timings']['total_s']:.0f} s"
    )
    for name, numbers in summary["headline"].items():
        print(
            f"  {name:32s} VOC(success) {_fmt(numbers['voc_success'])}  MAE {_fmt(numbers['mae'])}  "
            f"success/failure AUROC {_fmt(numbers['auroc'])}"
        )
    verdict = "meets" if summary["meets_targets"] else "does NOT meet"
    print(f"SARM {verdict} the targets VOC >= {VOC_TARGET} and AUROC >= {AUROC_TARGET}")
    for name, text in summary["notes"].items():
        print(f"{name}: {text}")
    for skipped in summary["skipped"]:
        print(f"skipped: {skipped}")
    print("curation of the held-out episodes (worst first; * = a scripted failure):")
    for row in summary["curation"]["table"]:
        mark = "*" if row["failed"] else " "
        print(f"  {mark} episode {row['episode']:>3}  {row['verdict']:<5} {row['reason']}")
    print(f"calibrated completion: {summary['calibration']['description']}")
    announce("report", summary["report"])
    announce("curation", summary["curation"]["files"]["curation.html"])
    announce("calibration", summary["calibration"]["path"])
    announce("plots", summary["plots"])
    announce("video", summary["video"])
    announce("summary", summary["summary_path"])
    return 0
