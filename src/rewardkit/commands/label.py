"""`rewardkit label`: progress for every frame of a dataset, written as the parquet lerobot's RA-BC reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rewardkit.cli_utils import ModelConfig, announce, parse_config
from rewardkit.data.dataset import DatasetConfig
from rewardkit.distributed.engines import DistributedConfig
from rewardkit.errors import RewardkitError

HELP = "label every frame of a dataset with a reward model (progress parquet for RA-BC)"
logger = logging.getLogger(__name__)


@dataclass
class LabelConfig:
    """Label every frame of every (selected) episode; shard with `accelerate launch -m rewardkit.cli label`.

    Args:
        dataset: the LeRobot dataset (`--dataset.root=PATH`, `--dataset.repo_id=ID`, `--dataset.episodes=[0,3]`).
        model: the reward model (`--model.path=CHECKPOINT`, `--model.device=cpu`).
        output: where to write the parquet (default: `<dataset root>/sarm_progress.parquet`, the name lerobot's
            RA-BC looks for). A new file: the dataset's own files are never modified.
        stride: label every Nth frame (and the last) and interpolate the rest linearly (1: every frame).
        dtype: "float32" (default) or "bfloat16": the encoder runs in it (cache build) and the model under
            autocast to it.
        cache_dir: feature-cache root for models that read cached features (default `$REWARDKIT_CACHE` or
            ~/.cache/rewardkit/features).
        push_to_hub: upload the parquet to the dataset's hub repo (`--dataset.repo_id`) as
            sarm_progress.parquet. Off unless given.
        overwrite: replace an existing parquet at the output path (off: the run stops before any work).
        distributed: spread the episodes over datatrove workers: `--distributed.executor=local|slurm
            --distributed.workers=N` (see `DistributedConfig`): the feature cache is built by N tasks and
            merged, then N tasks label and one writes the parquet. A rerun after a killed worker redoes
            only the episodes without a part.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: str | None = None
    stride: int = 1
    dtype: str = "float32"
    cache_dir: str | None = None
    push_to_hub: bool = False
    overwrite: bool = False
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def main(argv: list[str]) -> int:
    cfg = parse_config(LabelConfig, argv, "label", HELP)
    if not cfg.model.spec:
        raise RewardkitError("give the reward model with --model.path=CHECKPOINT (or --model.type=NAME)")
    if cfg.stride < 1:
        raise RewardkitError(f"--stride must be >= 1, got {cfg.stride}")
    if cfg.push_to_hub and not cfg.dataset.repo_id:
        raise RewardkitError("--push_to_hub=true needs --dataset.repo_id (the dataset repo to upload to)")

    from rewardkit.data.dataset import open_from_config
    from rewardkit.io_utils import check_overwrite
    from rewardkit.labelling import ShardState, default_output_path, label_to_parquet

    dataset = open_from_config(cfg.dataset)
    output = check_overwrite(cfg.output or default_output_path(dataset), cfg.overwrite)
    if cfg.distributed.executor:
        return _run_on_datatrove(cfg, dataset, output)
    shard = ShardState.from_accelerate()
    device = cfg.model.device
    if device is None and shard.num_processes > 1:
        from accelerate import PartialState

        device = str(PartialState().device)
    model = cfg.model.load(device)
    from rewardkit.encoders import resolve_dtype

    dtype = resolve_dtype(cfg.dtype)
    path = label_to_parquet(
        model,
        cfg.model.spec,
        dataset,
        output,
        cfg.stride,
        shard=shard,
        dtype=dtype,
        cache_dir=cfg.cache_dir,
    )
    if path is None:  # not the main process
        return 0
    announce("progress", path)
    if cfg.push_to_hub:
        _push(cfg, path)
    return 0


def _push(cfg: LabelConfig, path) -> None:
    from huggingface_hub import HfApi

    from rewardkit.labelling import PROGRESS_FILENAME

    HfApi().upload_file(
        path_or_fileobj=str(path),
        path_in_repo=PROGRESS_FILENAME,
        repo_id=cfg.dataset.repo_id,
        repo_type="dataset",
    )
    logger.info("uploaded %s to the dataset repo %s as %s", path, cfg.dataset.repo_id, PROGRESS_FILENAME)


def _run_on_datatrove(cfg: LabelConfig, dataset, output) -> int:
    """Labelling as datatrove stages: the feature cache's (when the model reads one and it is not
    complete), then N labelling tasks and one merge."""
    from pathlib import Path

    from rewardkit.cache import FeatureCache
    from rewardkit.distributed.engines import (
        CacheMergeStep,
        CacheShardStep,
        LabelMergeStep,
        LabelShardStep,
        clear_completions,
        run_stages,
    )
    from rewardkit.labelling.labeller import resolve_cameras

    cfg.distributed.check()
    output = Path(output)
    workers = cfg.distributed.workers
    # Loaded once here (on the CPU) only to learn what it reads; each task loads its own.
    needs = cfg.model.load("cpu").required_inputs()
    stages = []
    if needs.encoder:
        cameras = resolve_cameras(needs, dataset)
        cached = FeatureCache.for_dataset(dataset, needs.encoder, cameras, cache_dir=cfg.cache_dir,
                                          encoder_dtype=cfg.dtype)  # fmt: skip
        if cached is None:
            stages += [
                ("cache", CacheShardStep(cfg.dataset, needs.encoder, cameras, cfg.cache_dir, cfg.model.device,
                                         cfg.dtype), workers),
                ("cache_merge", CacheMergeStep(cfg.dataset, needs.encoder, cameras, cfg.cache_dir, cfg.dtype), 1),
            ]  # fmt: skip
    stages += [
        ("label", LabelShardStep(cfg.dataset, cfg.model, str(output), cfg.stride, cfg.dtype, cfg.cache_dir), workers),
        ("label_merge", LabelMergeStep(cfg.dataset, str(output)), 1),
    ]  # fmt: skip
    logging_dir = Path(cfg.distributed.logging_dir or output.parent / f".{output.name}.datatrove")
    # Our parts, not datatrove's completion markers, say what is done: a rerun redoes only what is missing.
    clear_completions(logging_dir, [name for name, _, _ in stages])
    run_stages(stages, cfg.distributed, logging_dir)
    if cfg.distributed.executor == "local":
        announce("progress", output)
        if cfg.push_to_hub:
            _push(cfg, output)
    else:
        announce("datatrove logs", logging_dir)
    return 0
