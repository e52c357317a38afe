"""A tiny random Qwen3-VL folder for the TOPReward tests, with a video processor whose pixel budget keeps
every prefix at the same resolution (the condition under which the prefix cache equals lerobot's scores)."""

from __future__ import annotations

import sys
from pathlib import Path

_models = str(Path(__file__).resolve().parent.parent)
if _models not in sys.path:
    sys.path.insert(0, _models)

from vlm_helpers import make_tiny_qwen3_vl  # noqa: E402


def make_tiny_topreward_vlm(folder: Path, seed: int = 0, **widths) -> Path:
    """A tiny Qwen3-VL (`vlm_helpers.make_tiny_qwen3_vl`) whose video processor keeps any frame count of
    32x32 frames at 32x32 (shortest_edge 1024 <= 2*32*32, longest_edge far above any test video)."""
    from transformers import AutoProcessor

    make_tiny_qwen3_vl(folder, seed=seed, **widths)
    processor = AutoProcessor.from_pretrained(folder)
    processor.video_processor.size = {"shortest_edge": 1024, "longest_edge": 32 * 32 * 4096}
    processor.save_pretrained(folder)
    return folder
