"""Quality of predicted progress: metrics, evaluation beside baselines, the JSON + HTML report."""

from rewardkit.evaluation.evaluate import (
    CONSTANT_BASELINE,
    ELAPSED_BASELINE,
    EpisodeTruth,
    baseline_predictions,
    evaluate_models,
    evaluate_predictions,
    ground_truth_from_dataset,
)
from rewardkit.evaluation.metrics import (
    constant_progress,
    elapsed_fraction,
    mean_absolute_error,
    roc_auc,
    spearman,
    stage_accuracy,
    value_order_correlation,
)
from rewardkit.evaluation.report import TIME_BASELINE_NOTE, write_report
from rewardkit.evaluation.run import EvaluationReport, evaluate_dataset, evaluation_output_paths

__all__ = [
    "CONSTANT_BASELINE",
    "ELAPSED_BASELINE",
    "TIME_BASELINE_NOTE",
    "EpisodeTruth",
    "EvaluationReport",
    "baseline_predictions",
    "constant_progress",
    "elapsed_fraction",
    "evaluate_dataset",
    "evaluation_output_paths",
    "evaluate_models",
    "evaluate_predictions",
    "ground_truth_from_dataset",
    "mean_absolute_error",
    "roc_auc",
    "spearman",
    "stage_accuracy",
    "value_order_correlation",
    "write_report",
]
