"""`rewardkit eval`: VOC, MAE, stage accuracy and failure AUROC on held-out episodes, beside two baselines."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.errors import RewardkitError

HELP = "evaluate reward models on held-out episodes (VOC, MAE, AUROC) with baselines; JSON + HTML report"


@dataclass
class EvalConfig:
    """Evaluate one or more models side by side, always beside two baselines (elapsed fraction, constant).

    Args:
        dataset: the LeRobot dataset; `--dataset.episodes=[...]` selects the held-out episodes (default: all).
        models: checkpoint folders, hub ids or named models ("<type>[:<argument>]"), side by side, e.g.
            `--models='[out/sarm,out/rewact,topreward:Qwen/Qwen3-VL-2B-Instruct,vlm_progress]'`.
        model_options: options per named model type, e.g. `--model_options='{vlm_progress: {base_url: ...}}'`.
        names: display names for `models` (default: the paths).
        failed_episodes: indices of failed attempts (for failure AUROC / failure MAE), besides those the
            dataset marks itself (`failure_column`, `keyframes`).
        failure_column: a per-episode boolean column of meta/episodes that marks failed episodes.
        failure_frames: failed episodes with the frame where each failed (counted within the episode, 0
            included), e.g. `--failure_frames='{3: 40, 7: 0}'`: their progress is known (it falls to 0
            there), so failure MAE scores them.
        failure_frame_column: a per-episode integer column of meta/episodes holding each failed episode's
            failure frame (null or negative: not failed by it).
        kind_column: a per-episode column of meta/episodes naming each episode's kind ("success" or a
            failure kind) for the per-kind breakdown (`rewardkit sim` datasets record theirs).
        keyframes: a keyframes JSON file (progress targets from keyframes; its failures count too).
        head: subtask annotations ("sparse" or "dense" LeRobot columns) giving the true stages.
        output_dir: where eval.json, report.html and plots/ go.
        stride: labelling stride (1: every frame).
        episode_plots: per-episode plots per model in the report (failed episodes first).
        device: where to run the models (default: each checkpoint's device).
        calibration: a calibration file (`rewardkit calibrate`) whose completion ROC and chosen point the
            report shows.
        overwrite: replace an earlier report (eval.json, report.html, plots) in `output_dir` (off: the run
            stops before any work).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    models: list[str] = field(default_factory=list)
    names: list[str] | None = None
    model_options: dict = field(default_factory=dict)
    failed_episodes: list[int] = field(default_factory=list)
    failure_column: str | None = None
    failure_frames: dict[int, int] = field(default_factory=dict)
    failure_frame_column: str | None = None
    kind_column: str | None = None
    keyframes: str | None = None
    head: str = "sparse"
    output_dir: str = "outputs/eval"
    stride: int = 1
    episode_plots: int = 3
    device: str | None = None
    calibration: str | None = None
    overwrite: bool = False


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str]) -> int:
    cfg = parse_config(EvalConfig, argv, "eval", HELP, renamed={"--stage_scheme": "--head"})
    if not cfg.models:
        raise RewardkitError("give the models to evaluate with --models='[CHECKPOINT,...]'")
    names = cfg.names or cfg.models
    if len(names) != len(cfg.models):
        raise RewardkitError(f"--names has {len(names)} entries for {len(cfg.models)} models")
    if len(set(names)) != len(names):
        raise RewardkitError(f"model names must differ, got {names}")

    import rewardkit
    from rewardkit.data.dataset import open_from_config
    from rewardkit.evaluation import evaluate_dataset, evaluation_output_paths, ground_truth_from_dataset
    from rewardkit.io_utils import check_overwrite

    dataset = open_from_config(cfg.dataset)
    unknown = sorted(set(cfg.failed_episodes) - set(dataset.episode_indices))
    if unknown and cfg.dataset.episodes is None:
        raise RewardkitError(f"--failed_episodes {unknown} are not episodes of {dataset.root}")
    truths = ground_truth_from_dataset(
        dataset, cfg.failed_episodes, keyframes=cfg.keyframes, failure_column=cfg.failure_column,
        stage_scheme=cfg.head, failure_frames=cfg.failure_frames,
        failure_frame_column=cfg.failure_frame_column, kind_column=cfg.kind_column,
    )  # fmt: skip
    for path in evaluation_output_paths(cfg.output_dir, names, truths, cfg.episode_plots):
        check_overwrite(path, cfg.overwrite)
    models = {
        name: rewardkit.load(
            spec, device=cfg.device, **cfg.model_options.get(str(spec).partition(":")[0], {})
        )
        for name, spec in zip(names, cfg.models, strict=True)
    }
    calibration = None
    if cfg.calibration:
        from rewardkit.online.calibration import load_calibration

        calibration = load_calibration(cfg.calibration)
    report = evaluate_dataset(
        models, dataset, truths, cfg.output_dir, cfg.stride, cfg.episode_plots, calibration=calibration
    )
    for name, result in report.results.items():
        s = result["summary"]
        auroc = "n/a" if s["final_progress_auroc"] is None else f"{s['final_progress_auroc']:.3f}"
        voc = "n/a" if s["voc_success_mean"] is None else f"{s['voc_success_mean']:.3f}"
        print(f"{name}: VOC(success) {voc}, failure AUROC {auroc}, failure MAE {_number(s['mae_failure'])}")
        for kind, k in s["by_kind"].items():
            print(
                f"  {kind} ({k['num_episodes']}): AUROC {_number(k['final_progress_auroc'])}, "
                f"final {_number(k['final_progress_mean'])}, MAE {_number(k['mae_failure'])}"
            )
    notes = {r["summary"]["failure_mae_note"] for r in report.results.values()} - {None}
    for note in sorted(notes):
        print(f"note: {note}")
    announce("json", report.json_path)
    announce("report", report.html_path)
    return 0
