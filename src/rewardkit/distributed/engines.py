"""Running the cache build and labelling on datatrove's executors (`pip install rewardkit[distributed]`).

lerobot's own SARM labelling on clusters is a datatrove pipeline (each task takes a share of the
episodes, an aggregation step writes the parquet); this is the same shape with our episode parts:

    stage "cache"        N tasks   build_cache(shard=ShardState(rank, N))     -> parts/<camera>/<ep>.npy
    stage "cache_merge"  1 task    merge_cache                                -> images/<camera>.npy, manifest
    stage "label"        N tasks   label_shard(shard=ShardState(rank, N))     -> .<output>.parts/<ep>.npz
    stage "label_merge"  1 task    merge_progress_parts                       -> the progress parquet

Each stage depends on the one before (`depends=`: the local executor runs them in order, SLURM chains
the jobs). datatrove marks finished tasks in `logging_dir` and skips them on a rerun; a task killed
midway is rerun and skips the episodes whose parts it already wrote. The steps are plain callables
holding plain configs, so datatrove can pickle them to its worker processes and SLURM jobs.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.distributed.shards import ShardState
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm")


@dataclass
class DistributedConfig:
    """How to spread the work over datatrove's executors (CLI: `--distributed.executor=slurm ...`).

    Args:
        executor: None (default): run in this process; under `accelerate launch` the processes share the
            episodes. `local`: datatrove's LocalPipelineExecutor (processes on this machine). `slurm`:
            datatrove's SlurmPipelineExecutor (one SLURM array job per stage, chained).
        workers: tasks the episodes are split into (each task a shard).
        local_workers: tasks running at once with `local` (default: all of them).
        logging_dir: datatrove's logs and completion markers (default: beside the result).
        partition: SLURM partition. time: SLURM time limit per task ("HH:MM:SS").
        cpus_per_task, mem_per_cpu_gb, gpus_per_task: SLURM resources of each task.
        job_name: SLURM job name prefix. venv_path: virtualenv activated by the SLURM jobs (default: the
            one running this command). sbatch_args: extra `#SBATCH` options, e.g. `{account: robots}`.
    """

    executor: str | None = None
    workers: int = 1
    local_workers: int | None = None
    logging_dir: str | None = None
    partition: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 4
    mem_per_cpu_gb: int = 4
    gpus_per_task: int = 0
    job_name: str = "rewardkit"
    venv_path: str | None = None
    sbatch_args: dict = field(default_factory=dict)

    def check(self) -> None:
        """Refuse bad settings before any work starts."""
        if self.executor is None:
            return
        if self.executor not in EXECUTORS:
            raise RewardkitError(f"--distributed.executor must be one of {EXECUTORS}, got '{self.executor}'")
        if self.workers < 1:
            raise RewardkitError(f"--distributed.workers must be >= 1, got {self.workers}")
        if self.executor == "slurm" and not self.partition:
            raise RewardkitError("--distributed.executor=slurm needs --distributed.partition=NAME")
        try:
            import datatrove  # noqa: F401
        except ImportError as e:
            raise RewardkitError(
                "--distributed.executor needs datatrove: pip install 'rewardkit[distributed]'"
            ) from e


def task_device(device: str | None, rank: int) -> str:
    """The device of task `rank`: `device` as given, else a GPU when there is one. With several GPUs
    visible (local executor on one machine) tasks take them in turn; under SLURM each task sees its own."""
    import torch

    if device is not None and device != "cuda":
        return device
    if not torch.cuda.is_available():
        return "cpu" if device is None else device
    count = torch.cuda.device_count()
    return f"cuda:{rank % count}" if count > 1 else "cuda"


# ---- steps (picklable callables: datatrove calls step(data, rank, world_size)) --------------------
@dataclass
class CacheShardStep:
    """One task of the cache build: encode this task's episodes into parts (no merge)."""

    dataset: Any  # DatasetConfig
    encoder: str
    cameras: list[str]
    cache_dir: str | None = None
    device: str | None = None
    dtype: str = "float32"
    batch_size: int = 64
    texts: list[str] = field(default_factory=list)

    def __call__(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        from rewardkit.cache import build_cache
        from rewardkit.data.dataset import open_from_config
        from rewardkit.encoders import make_encoder

        dataset = open_from_config(self.dataset)
        encoder = make_encoder(self.encoder, device=task_device(self.device, rank), dtype=self.dtype)
        build_cache(dataset, encoder, self.cameras, cache_dir=self.cache_dir, batch_size=self.batch_size,
                    progress=False, texts=self.texts, shard=ShardState(rank, world_size))  # fmt: skip


@dataclass
class CacheMergeStep:
    """The cache's merge task: every part into the features files, then the manifest."""

    dataset: Any
    encoder: str
    cameras: list[str]
    cache_dir: str | None = None
    dtype: str = "float32"

    def __call__(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        from rewardkit.cache import merge_cache
        from rewardkit.data.dataset import open_from_config

        dataset = open_from_config(self.dataset)
        path = find_cache_folder(dataset, self.encoder, self.dtype, self.cache_dir)
        merge_cache(path, self.cameras, dataset.episode_indices, dataset_root=dataset.root)


@dataclass
class LabelShardStep:
    """One task of labelling: this task's episodes into parts (the feature cache is complete by now)."""

    dataset: Any
    model: Any  # anything with .spec and .load(device): the CLI's ModelConfig
    output: str
    stride: int = 1
    dtype: str = "float32"
    cache_dir: str | None = None

    def __call__(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        from rewardkit.data.dataset import open_from_config
        from rewardkit.encoders import resolve_dtype
        from rewardkit.labelling import label_shard

        dataset = open_from_config(self.dataset)
        model = self.model.load(task_device(self.model.device, rank))
        label_shard(model, self.model.spec, dataset, self.output, self.stride, shard=ShardState(rank, world_size),
                    show_progress=False, dtype=resolve_dtype(self.dtype), cache_dir=self.cache_dir)  # fmt: skip


@dataclass
class LabelMergeStep:
    """Labelling's merge task: the progress parquet from every episode's part, in episode order."""

    dataset: Any
    output: str

    def __call__(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        from rewardkit.data.dataset import open_from_config
        from rewardkit.labelling import merge_progress_parts

        merge_progress_parts(self.output, open_from_config(self.dataset))


def find_cache_folder(dataset: Any, encoder_spec: str, dtype: str, cache_dir: str | None) -> Path:
    """The cache folder the workers of (dataset, encoder, dtype) wrote into, found by its key.json
    (the merge task does not load the encoder just to learn its image size)."""
    import json

    from rewardkit.cache.store import FORMAT_VERSION, KEY, dataset_fingerprint, default_cache_root, dtype_name
    from rewardkit.encoders import canonical_spec, resolve_dtype

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    wanted = {
        "format_version": FORMAT_VERSION,
        "dataset_identity": dataset_fingerprint(dataset),
        "encoder_spec": canonical_spec(encoder_spec),
        "encoder_dtype": dtype_name(resolve_dtype(dtype)),
    }
    found = []
    for key_path in sorted(root.glob(f"*/{KEY}")):
        key = json.loads(key_path.read_text())
        if all(key.get(k) == v for k, v in wanted.items()):
            found.append(key_path.parent)
    if len(found) != 1:
        raise RewardkitError(
            f"expected one feature cache of {dataset.root} with encoder '{encoder_spec}' ({dtype}) under "
            f"{root}, found {len(found)}: {[str(p) for p in found]}; did the cache workers run?"
        )
    return found[0]


# ---- executors ---------------------------------------------------------------------------------
def run_stages(stages: Sequence[tuple[str, Any, int]], cfg: DistributedConfig, logging_dir: Path) -> None:
    """Run `stages` ([(name, step, tasks)], each depending on the one before) on cfg.executor.

    Local: returns when every stage finished (raises if a task failed). SLURM: returns once the chained
    jobs are submitted; their logs are under `logging_dir`/<stage>.
    """
    cfg.check()
    previous = None
    for name, step, tasks in stages:
        common = {
            "pipeline": [step],
            "tasks": tasks,
            "logging_dir": str(logging_dir / name),
            "depends": previous,
        }
        if cfg.executor == "local":
            from datatrove.executor import LocalPipelineExecutor

            workers = min(tasks, cfg.local_workers or tasks)
            previous = LocalPipelineExecutor(**common, workers=workers)
        else:
            import sys

            from datatrove.executor.slurm import SlurmPipelineExecutor

            previous = SlurmPipelineExecutor(
                **common, workers=tasks, job_name=f"{cfg.job_name}_{name}", time=cfg.time,
                partition=cfg.partition, cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb,
                gpus_per_task=cfg.gpus_per_task, sbatch_args=dict(cfg.sbatch_args) or None,
                venv_path=cfg.venv_path or str(Path(sys.prefix) / "bin" / "activate"),
            )  # fmt: skip
    logger.info("running %s on datatrove's %s executor (logs: %s)", [s[0] for s in stages], cfg.executor,
                logging_dir)  # fmt: skip
    previous.run()
    if cfg.executor == "local":
        failed = [name for (name, _, tasks), executor in zip(stages, _chain(previous), strict=True)
                  if executor.get_incomplete_ranks(range(tasks))]  # fmt: skip
        if failed:
            raise RewardkitError(
                f"datatrove stage(s) {failed} did not finish (see the logs under {logging_dir}); run the same "
                "command again: finished tasks and episodes are kept"
            )


def _chain(last: Any) -> list:
    chain = []
    while last is not None:
        chain.append(last)
        last = last.depends
    return chain[::-1]


def clear_completions(logging_dir: Path, stages: Sequence[str]) -> None:
    """Forget datatrove's completion markers of `stages` (a fresh run whose earlier results were removed
    must not be skipped as done)."""
    for name in stages:
        shutil.rmtree(logging_dir / name / "completions", ignore_errors=True)
