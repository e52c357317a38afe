"""`combine_checkpoints`: K reward-model checkpoints -> one ensemble checkpoint folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import check_overwrite
from rewardkit.models.base import load
from rewardkit.models.ensemble.modeling_ensemble import EnsembleRewardModel


def combine_checkpoints(paths: Sequence[str | Path], output_dir: str | Path, overwrite: bool = False) -> Path:
    """Combine K checkpoints of one rewardkit model type (typically one SARM trained with K seeds) into
    one ensemble checkpoint at `output_dir` (config.json + model.safetensors; `rewardkit.load` opens it).

    Everything is checked before anything is written: at least two checkpoints, each loads (strictly), all
    of one model type, all reading the same inputs (cameras, encoder, state); `output_dir` is refused when
    it exists (unless `overwrite`) or is one of the checkpoints. The folder is written atomically.

    Returns the output folder.
    """
    names = [str(p) for p in paths]
    if len(names) < 2:
        raise RewardkitError(
            f"an ensemble needs at least 2 checkpoints, got {len(names)} ({names}); pass "
            "--checkpoints=[a,b,...]"
        )
    output = Path(output_dir)
    check_overwrite(output, overwrite)
    for name in names:
        if Path(name).expanduser().resolve() == output.expanduser().resolve():
            raise RewardkitError(
                f"--output_dir {output} is one of the checkpoints; write the ensemble elsewhere"
            )
    models = [load(name, device="cpu") for name in names]
    ensemble = EnsembleRewardModel.from_members(models, names)
    ensemble.save_pretrained(output)
    return output
