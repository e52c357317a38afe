"""RewACT's training recipe: lerobot's own training pipeline (`lerobot-train`).

RewACT is a lerobot policy, so its training loop is lerobot's (dataloading, optimiser, checkpoints with
pre/post processors, logging, resuming, hub push). This module translates rewardkit's flag style to
lerobot's: `--model.<field>` becomes `--policy.<field>` (every `RewACTConfig` field, e.g.
`--model.reward_loss_weight=2`, `--model.path=<checkpoint>` to fine-tune); `--failed_episodes` and
`--failure_frames` become `--policy.failed_episodes` / `--policy.failure_frames`; every other flag
(`--dataset.*`, `--steps`, `--batch_size`, `--output_dir`, ...) is lerobot's, passed unchanged. Unlike `lerobot-train`, nothing is uploaded unless
`--model.push_to_hub=true` is given.

Example:
    rewardkit train --model.type=rewact --dataset.repo_id=user/pick --steps=20000 --batch_size=8 \
        --model.reward_targets=parquet --model.reward_targets_path=pick/progress.parquet
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.training.trainer import TrainResult

MODEL_PREFIX = "--model."
POLICY_PREFIX = "--policy."
# rewardkit's shared spellings of failed episodes (and where they failed); RewACT keeps them in its config.
FAILED_FLAG = "--failed_episodes"
FAILURE_FRAMES_FLAG = "--failure_frames"


@dataclass
class RewACTTrainConfig:
    """`rewardkit train --model.type=rewact`: the flags handed to lerobot's training pipeline.

    Args:
        args: lerobot-train flags in rewardkit's style (`--model.*` for the policy, the rest lerobot's).
    """

    args: list[str] = field(default_factory=list)


def lerobot_train_args(argv: list[str]) -> list[str]:
    """rewardkit-style flags -> `lerobot-train` flags (`--model.*` -> `--policy.*`, no upload by default)."""
    args = []
    for arg in argv:
        if arg.startswith(MODEL_PREFIX):
            arg = POLICY_PREFIX + arg[len(MODEL_PREFIX) :]
        elif arg.startswith((FAILED_FLAG + "=", FAILURE_FRAMES_FLAG + "=")):
            arg = POLICY_PREFIX + arg[2:]
        args.append(arg)
    has_path = any(arg.startswith("--policy.path") for arg in args)
    if not has_path and not any(arg.startswith("--policy.type") for arg in args):
        args.append("--policy.type=rewact")
    if not any(arg.startswith("--policy.push_to_hub") for arg in args):
        args.append("--policy.push_to_hub=false")
    return args


def with_output_dir(args: list[str], now: datetime.datetime | None = None) -> list[str]:
    """`args` with an `--output_dir`: lerobot's own choice (`outputs/train/<date>/<time>_<job name>`) made
    here when none is given, so the checkpoint's folder is known and printed (lerobot does not return it).
    A resumed run (`--resume=true`) keeps lerobot's handling (the folder of the checkpoint it resumes)."""
    if any(a.startswith("--output_dir=") for a in args) or "--resume=true" in args:
        return list(args)
    now = now or datetime.datetime.now()
    jobs = [a.split("=", 1)[1] for a in args if a.startswith("--job_name=")]
    types = [a.split("=", 1)[1] for a in args if a.startswith("--policy.type=")]
    job = jobs[-1] if jobs else (types[-1] if types else "rewact")
    return [*args, f"--output_dir=outputs/train/{now:%Y-%m-%d}/{now:%H-%M-%S}_{job}"]


def train_rewact(cfg: RewACTTrainConfig) -> TrainResult:
    """Train a RewACT policy with lerobot's training pipeline; returns the last checkpoint's model folder
    (`<output_dir>/checkpoints/last/pretrained_model`; without `--output_dir`, lerobot's dated folder, chosen
    here; None for a resumed run without one)."""
    from lerobot.scripts import lerobot_train
    from lerobot.utils.import_utils import register_third_party_plugins

    import rewardkit.models.rewact  # noqa: F401  (registers the `rewact` policy type)
    from rewardkit.models.safe_processors import check_policy_path

    register_third_party_plugins()
    saved_argv = sys.argv
    # lerobot's config parser (and its `--policy.path` handling) reads sys.argv.
    args = with_output_dir(check_policy_path(lerobot_train_args(list(cfg.args))))
    sys.argv = ["lerobot-train", *args]
    try:
        lerobot_train.train()
    finally:
        sys.argv = saved_argv
    output_dirs = [arg.split("=", 1)[1] for arg in args if arg.startswith("--output_dir=")]
    steps = [int(arg.split("=", 1)[1]) for arg in args if arg.startswith("--steps=")]
    checkpoint = Path(output_dirs[-1]) / "checkpoints" / "last" / "pretrained_model" if output_dirs else None
    return TrainResult(checkpoint=checkpoint, step=steps[-1] if steps else 0)


@contextmanager
def lerobot_info_logs_hidden() -> Iterator[None]:
    """While lerobot's training loop runs, its console shows warnings and errors only, not its INFO lines
    (config dump, per-step metrics). lerobot's `init_logging` replaces the root logger's handlers; they and
    the root level are restored afterwards, so rewardkit's (and lerobot's) logging elsewhere is unchanged."""
    from lerobot.scripts import lerobot_train

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    init_logging = lerobot_train.init_logging

    def init_logging_warnings_only(*args: Any, **kwargs: Any) -> None:
        init_logging(*args, **{**kwargs, "console_level": "WARNING"})

    lerobot_train.init_logging = init_logging_warnings_only
    try:
        yield
    finally:
        lerobot_train.init_logging = init_logging
        root.handlers[:] = handlers
        root.setLevel(level)
