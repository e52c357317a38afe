"""Policy training with RA-BC: lerobot's own training loop, with rewardkit's weighter and per-sample losses.

lerobot 0.6.1's `lerobot_train.train` already weights the loss when `cfg.sample_weighting` is set: it
builds a weighter with `lerobot.utils.sample_weighting.make_sample_weighter` (looked up at call time) and
`update_policy` computes Σ w_i l_i / Σ w_i from `policy.forward(batch, reduction="none")`. What it cannot
do is weight ACT or Diffusion (no `reduction`), read the weights fast, or say whether κ is sensible. So we
own exactly that: for the duration of a run, lerobot's factory is replaced by
`rewardkit.rabc.make_sample_weighter`, which builds our weighter and gives the policy a per-sample loss.
Everything else (dataset, processors, optimiser, accelerate, checkpoints, logging, wandb) is lerobot's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from lerobot.utils.sample_weighting import SampleWeighter

from rewardkit.errors import RewardkitError
from rewardkit.rabc.weighter import make_sample_weighter


class _Recorder:
    """Keeps the weighter built during a run so the caller can report on it afterwards."""

    def __init__(self) -> None:
        self.weighter: SampleWeighter | None = None

    def __call__(self, *args, **kwargs) -> SampleWeighter | None:  # noqa: ANN002, ANN003
        self.weighter = make_sample_weighter(*args, **kwargs)
        return self.weighter


@contextmanager
def rewardkit_sample_weighting() -> Iterator[_Recorder]:
    """Within the block, lerobot's training loop builds rewardkit's weighters (ACT, Diffusion... work).

    Yields an object whose `.weighter` is the weighter lerobot built (None before / without weighting).
    Usable around a direct call of `lerobot.scripts.lerobot_train.train(cfg)`.
    """
    import lerobot.utils.sample_weighting as lerobot_sample_weighting

    original = lerobot_sample_weighting.make_sample_weighter
    recorder = _Recorder()
    lerobot_sample_weighting.make_sample_weighter = recorder
    try:
        yield recorder
    finally:
        lerobot_sample_weighting.make_sample_weighter = original


def _flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name=value` (or `--name value`) in `argv`, the last one winning; None if absent."""
    value = None
    for position, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
        elif arg == name and position + 1 < len(argv):
            value = argv[position + 1]
    return value


def lerobot_train_argv(argv: list[str]) -> list[str]:
    """`argv` for lerobot-train, uploading nothing unless asked.

    lerobot's policies default to `push_to_hub=True`; here the default is no upload: unless the user
    passes `--policy.push_to_hub=true` (with `--policy.repo_id`), `--policy.push_to_hub=false` is added.

    Raises:
        RewardkitError: `--policy.push_to_hub=true` without `--policy.repo_id` (before any training).
    """
    push = _flag_value(argv, "--policy.push_to_hub")
    if push is None:
        return [*argv, "--policy.push_to_hub=false"]
    if push.strip().lower() in ("true", "1", "yes") and not _flag_value(argv, "--policy.repo_id"):
        raise RewardkitError(
            "--policy.push_to_hub=true needs --policy.repo_id=USER/NAME (the hub repo to upload the policy to)"
        )
    return list(argv)


def train_policy(argv: list[str]) -> SampleWeighter | None:
    """Run lerobot-train with `argv` (all of its flags) and rewardkit's sample weighting installed.

    Nothing is uploaded unless `--policy.push_to_hub=true` is given (see `lerobot_train_argv`).
    Returns the weighter used (None when `--sample_weighting.type` was not given).
    """
    from rewardkit.models.safe_processors import check_policy_path

    # a fine-tuned checkpoint's processor files are checked before lerobot's loader imports what they name
    argv = check_policy_path(lerobot_train_argv(argv))
    from lerobot.scripts import lerobot_train
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    try:  # registers the `rewact` policy type even when its lerobot plugin package is not installed
        import rewardkit.models.rewact  # noqa: F401
    except ImportError:
        pass
    saved_argv = sys.argv
    # lerobot's config parser (and its `--policy.path` handling) reads sys.argv.
    sys.argv = ["rewardkit train-policy", *argv]
    try:
        with rewardkit_sample_weighting() as recorder:
            lerobot_train.train()
    finally:
        sys.argv = saved_argv
    return recorder.weighter
