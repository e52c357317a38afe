"""`rewardkit info`: what a dataset holds (episodes, tasks, cameras, state and action names)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rewardkit.cli_utils import parse_config
from rewardkit.data.dataset import DatasetConfig, open_from_config

HELP = "list a dataset's episodes (index, length, task), fps, cameras, state and action names"


@dataclass
class InfoConfig:
    """Args:
    dataset: the LeRobot dataset (`--dataset.root=PATH` and/or `--dataset.repo_id=ID`).
    json: print JSON instead of a table.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    json: bool = False


def main(argv: list[str]) -> int:
    cfg = parse_config(InfoConfig, argv, "info", HELP)
    ds = open_from_config(cfg.dataset)
    episodes = ds.episodes()
    summary = {
        "repo_id": ds.repo_id,
        "root": str(ds.root),
        "fps": ds.fps,
        "cameras": ds.camera_keys,
        "state_names": ds.state_names,
        "action_names": ds.action_names,
        "episodes": [
            {"episode_index": e.episode_index, "length": e.length, "task": e.task} for e in episodes
        ],
    }
    if cfg.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"dataset {ds.repo_id} at {ds.root}: {len(episodes)} episodes, {ds.fps} fps")
    print(f"cameras: {', '.join(ds.camera_keys) or '(none)'}")
    print(f"state:   {', '.join(ds.state_names) or '(none)'}")
    print(f"action:  {', '.join(ds.action_names) or '(none)'}")
    print(f"{'episode':>8} {'length':>7}  task")
    for e in episodes:
        print(f"{e.episode_index:>8} {e.length:>7}  {e.task}")
    return 0
