"""`rewardkit ensemble`: combine K checkpoints of one model type into one ensemble checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.errors import RewardkitError

HELP = "combine K checkpoints of one model type (e.g. K seeds) into one model that reports progress_std"


@dataclass
class EnsembleCommandConfig:
    """Args:
    checkpoints: the member checkpoint folders (or hub repos), at least two, all of one model type and
        reading the same cameras, encoder and state (e.g. `rewardkit train ... --seed=K` for K = 0, 1, 2).
    output_dir: the ensemble's checkpoint folder (load it with `rewardkit.load`, label with `rewardkit label`).
    overwrite: replace an existing output folder as a whole (none of its files are kept), atomically.
    """

    checkpoints: list[str] = field(default_factory=list)
    output_dir: str = ""
    overwrite: bool = False


def main(argv: list[str]) -> int:
    cfg = parse_config(EnsembleCommandConfig, argv, "ensemble", HELP)
    if not cfg.output_dir:
        raise RewardkitError("--output_dir=FOLDER (where the ensemble checkpoint is written) is required")
    from rewardkit.models.ensemble import combine_checkpoints

    announce("ensemble", combine_checkpoints(cfg.checkpoints, cfg.output_dir, cfg.overwrite))
    return 0
