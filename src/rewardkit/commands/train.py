"""`rewardkit train --model.type=<sarm|rewact|classifier> ...`: train a reward model."""

from __future__ import annotations

import importlib

from rewardkit.cli_utils import announce, parse_config
from rewardkit.errors import RewardkitError

HELP = "train a reward model (--model.type=sarm|rewact|classifier)"

# model type -> module with `main(argv) -> int` (written per model; imported only when chosen).
TRAINERS = {
    "rewact": "rewardkit.models.rewact.training",
    "classifier": "rewardkit.models.classifier.training",
}


def _model_type(argv: list[str]) -> tuple[str, list[str]]:
    rest, model_type = [], None
    args = iter(argv)
    for arg in args:
        if arg.startswith("--model.type="):
            model_type = arg.split("=", 1)[1]
        elif arg == "--model.type":
            model_type = next(args, None)
        else:
            rest.append(arg)
    return model_type or "sarm", rest


def main(argv: list[str]) -> int:
    """Dispatch on `--model.type` (default sarm); the other flags go to that model's trainer."""
    model_type, rest = _model_type(argv)
    if model_type in ("sarm", "rewardkit_sarm"):
        from rewardkit.models.sarm.training import SARMTrainConfig, train_sarm

        result = train_sarm(parse_config(SARMTrainConfig, rest, "train"))
        announce("checkpoint", result.checkpoint)
        return 0
    if model_type not in TRAINERS:
        raise RewardkitError(f"unknown --model.type={model_type}; choose one of {['sarm', *TRAINERS]}")
    try:
        module = importlib.import_module(TRAINERS[model_type])
    except ModuleNotFoundError as e:
        raise RewardkitError(
            f"--model.type={model_type}: its trainer ({TRAINERS[model_type]}) is not installed ({e})"
        ) from e
    return int(module.main([f"--model.type={model_type}", *rest]) or 0)
