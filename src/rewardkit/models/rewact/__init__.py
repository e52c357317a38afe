"""RewACT: ACT with a reward head, as a lerobot policy (type `rewact`) and a rewardkit reward model.

Importing this package registers the `rewact` policy type with lerobot's config registry and a loader
with `rewardkit.load`, so RewACT checkpoints can be labelled, plotted and evaluated like reward models.
`rewardkit.load(path)` and `RewACTPolicy.from_pretrained(path)` are the same loader.
"""

from __future__ import annotations

from pathlib import Path

from rewardkit.models.base import register_loader
from rewardkit.models.rewact.configuration_rewact import RewACTConfig
from rewardkit.models.rewact.modeling_rewact import (
    PREPROCESSOR_FILE,
    RewACTPolicy,
    act_per_sample_loss,
    build_progress_targets,
)

__all__ = [
    "PREPROCESSOR_FILE",
    "RewACTConfig",
    "RewACTPolicy",
    "act_per_sample_loss",
    "build_progress_targets",
    "load_rewact",
]


def load_rewact(folder: Path) -> RewACTPolicy:
    """Load a RewACT checkpoint folder: `RewACTPolicy.from_pretrained` (strict weights, safe processors)."""
    return RewACTPolicy.from_pretrained(folder)


register_loader("rewact", load_rewact)
