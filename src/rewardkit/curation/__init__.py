"""Curation: judge every episode of a dataset from its progress curve (keep / look / drop, with the
reason), write the table, the keep list and a filtered copy of the dataset.

- `rewardkit.curation.quality`: the metrics and verdicts, pure (arrays in, dataclasses out).
- `rewardkit.curation.dataset_curation`: reading a progress parquet against its dataset, the outputs.
"""

from rewardkit.curation.dataset_curation import (
    CurationReport,
    calibrate_from_progress,
    curate_dataset,
    curation_output_paths,
    render_curation_html,
    write_curation,
    write_filtered_dataset,
    write_keep_list,
    write_verdict_weights,
)
from rewardkit.curation.quality import (
    CurationThresholds,
    EpisodeMetrics,
    EpisodeQuality,
    curate,
    episode_metrics,
    robust_z,
    verdict,
)

__all__ = [
    "CurationReport",
    "CurationThresholds",
    "EpisodeMetrics",
    "EpisodeQuality",
    "calibrate_from_progress",
    "curate",
    "curate_dataset",
    "curation_output_paths",
    "episode_metrics",
    "render_curation_html",
    "robust_z",
    "verdict",
    "write_curation",
    "write_filtered_dataset",
    "write_keep_list",
    "write_verdict_weights",
]
