"""`combine_checkpoints`: K reward-model checkpoints -> one ensemble checkpoint folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_folder, check_overwrite
from rewardkit.models.base import load
from rewardkit.models.ensemble.modeling_ensemble import EnsembleRewardModel


def combine_checkpoints(paths: Sequence[str | Path], output_dir: str | Path, overwrite: bool = False) -> Path:
    """Combine K checkpoints of one rewardkit model type (typically one SARM trained with K seeds) into
    one ensemble checkpoint at `output_dir` (config.json + model.safetensors; `rewardkit.load` opens it).

    Everything is checked before anything is written: at least two checkpoints, each loads (strictly), all
    of one model type, all reading the same inputs (cameras, encoder, state); `output_dir` is refused when
    it exists (unless `overwrite`), is one of the checkpoints or holds one. The folder is written atomically:
    built beside `output_dir`, then swapped in; with `overwrite` an existing folder is replaced as a whole
    (none of its files survive).

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
    resolved = output.expanduser().resolve()
    for name in names:
        checkpoint = Path(name).expanduser().resolve()
        if checkpoint == resolved or resolved in checkpoint.parents:
            # --overwrite replaces the output folder as a whole: it would delete the checkpoint
            what = "is" if checkpoint == resolved else "holds"
            raise RewardkitError(
                f"--output_dir {output} {what} one of the checkpoints ({name}); write the ensemble elsewhere"
            )
    models = [load(name, device="cpu") for name in names]
    ensemble = EnsembleRewardModel.from_members(models, names)
    return atomic_write_folder(output, ensemble.save_pretrained)
