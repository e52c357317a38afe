"""Whole-dataset progress labelling and the progress parquet lerobot's RA-BC reads."""

from rewardkit.labelling.labeller import (
    LabellingError,
    ShardState,
    default_output_path,
    episode_inputs,
    interpolate_outputs,
    label_dataset,
    label_one_episode,
    label_to_parquet,
    open_feature_cache,
    shard_episodes,
    strided_positions,
)
from rewardkit.labelling.parquet import (
    PROGRESS_FILENAME,
    EpisodeLabels,
    check_progress,
    dataset_fingerprint,
    progress_table,
    read_progress_parquet,
    write_progress_parquet,
)

__all__ = [
    "PROGRESS_FILENAME",
    "EpisodeLabels",
    "LabellingError",
    "ShardState",
    "check_progress",
    "dataset_fingerprint",
    "default_output_path",
    "episode_inputs",
    "interpolate_outputs",
    "label_dataset",
    "label_one_episode",
    "label_to_parquet",
    "open_feature_cache",
    "progress_table",
    "read_progress_parquet",
    "shard_episodes",
    "strided_positions",
    "write_progress_parquet",
]
