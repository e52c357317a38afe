"""Simulated benchmark data: LeRobot datasets recorded from metaworld's scripted experts, with ground truth.

`record_metaworld_dataset` needs the `[sim]` extra (metaworld + mujoco); `bundled_dataset_path` does not.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_DATASET = "metaworld_push_pick_place"


def bundled_dataset_path(name: str = BUNDLED_DATASET) -> Path:
    """The small metaworld dataset that ships inside the package (see its GENERATION.md)."""
    path = Path(__file__).parent / "bundled" / name
    if not (path / "meta" / "info.json").exists():
        raise FileNotFoundError(
            f"bundled dataset {name!r} not found at {path} (is the package installed fully?)"
        )
    return path


def __getattr__(name: str):
    # The recorder imports nothing heavy at module level, but keep `rewardkit.sim` importable without it.
    from rewardkit.sim import metaworld_sim

    if name in metaworld_sim.__all__:
        return getattr(metaworld_sim, name)
    raise AttributeError(name)
