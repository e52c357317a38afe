"""`rewardkit train --model.type=rewact ...`: RewACT trains with lerobot's own training pipeline.

RewACT is a lerobot policy, so its training loop is lerobot's (`lerobot-train`: dataloading, optimiser,
checkpoints with pre/post processors, logging, resuming, hub push). This module translates rewardkit's
flag style to lerobot's: `--model.<field>` becomes `--policy.<field>` (every `RewACTConfig` field, e.g.
`--model.reward_loss_weight=2`, `--model.path=<checkpoint>` to fine-tune); every other flag
(`--dataset.*`, `--steps`, `--batch_size`, `--output_dir`, ...) is lerobot's, passed unchanged. Unlike
`lerobot-train`, nothing is uploaded unless `--model.push_to_hub=true` is given.

Example:
    rewardkit train --model.type=rewact --dataset.repo_id=user/pick --steps=20000 --batch_size=8 \
        --model.reward_targets=parquet --model.reward_targets_path=pick/progress.parquet
"""

from __future__ import annotations

import sys
from pathlib import Path

MODEL_PREFIX = "--model."
POLICY_PREFIX = "--policy."


def lerobot_train_args(argv: list[str]) -> list[str]:
    """rewardkit-style flags -> `lerobot-train` flags (`--model.*` -> `--policy.*`, no upload by default)."""
    args = [POLICY_PREFIX + arg[len(MODEL_PREFIX) :] if arg.startswith(MODEL_PREFIX) else arg for arg in argv]
    has_path = any(arg.startswith("--policy.path") for arg in args)
    if not has_path and not any(arg.startswith("--policy.type") for arg in args):
        args.append("--policy.type=rewact")
    if not any(arg.startswith("--policy.push_to_hub") for arg in args):
        args.append("--policy.push_to_hub=false")
    return args


def main(argv: list[str]) -> int:
    """Train a RewACT policy with lerobot's training pipeline; returns the exit status (0)."""
    from lerobot.scripts import lerobot_train
    from lerobot.utils.import_utils import register_third_party_plugins

    import rewardkit.models.rewact  # noqa: F401  (registers the `rewact` policy type)
    from rewardkit.cli_utils import announce  # this function is the body of the `rewardkit train` command
    from rewardkit.models.safe_processors import check_policy_path

    register_third_party_plugins()
    saved_argv = sys.argv
    # lerobot's config parser (and its `--policy.path` handling) reads sys.argv.
    args = check_policy_path(lerobot_train_args(argv))
    sys.argv = ["lerobot-train", *args]
    try:
        lerobot_train.train()
    finally:
        sys.argv = saved_argv
    output_dirs = [arg.split("=", 1)[1] for arg in args if arg.startswith("--output_dir=")]
    if output_dirs:
        checkpoint = Path(output_dirs[-1]) / "checkpoints" / "last" / "pretrained_model"
        if checkpoint.is_dir():
            announce("checkpoint", checkpoint)
    return 0
