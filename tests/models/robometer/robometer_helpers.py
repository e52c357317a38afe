"""Tiny, randomly initialised Robometers around the tiny Qwen3-VL of `tests/models/vlm_helpers.py`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

_models = str(Path(__file__).parent.parent)
if _models not in sys.path:
    sys.path.insert(0, _models)

from vlm_helpers import make_tiny_qwen3_vl  # noqa: E402

CAMERA = "observation.images.top"


def lerobot_robometer_checkpoint(
    folder: Path, camera: str = CAMERA, seed: int = 0, widths: dict | None = None, **config: Any
) -> Path:
    """What lerobot saves for a Robometer (config.json of type "robometer" + model.safetensors), around a
    tiny random Qwen3-VL (`widths`: `make_tiny_qwen3_vl` overrides) whose processor sits in
    `folder / "qwen"` (the config's `base_model_id`). Returns the checkpoint folder `folder / "robometer"`."""
    from lerobot.rewards.robometer import RobometerConfig, RobometerRewardModel

    qwen = make_tiny_qwen3_vl(Path(folder) / "qwen", save_weights=False, **(widths or {}))
    values = dict(
        base_model_id=str(qwen),
        pretrained_path=str(qwen),
        image_key=camera,
        torch_dtype="float32",
        device="cpu",
    )
    values.update(config)
    torch.manual_seed(seed)
    model = RobometerRewardModel(RobometerConfig(**values)).eval()
    checkpoint = Path(folder) / "robometer"
    model.save_pretrained(checkpoint)
    return checkpoint


def build_robometer(camera: str = CAMERA, seed: int = 0, **options: Any) -> torch.nn.Module:
    """A tiny random `RewardkitRobometerRewardModel` (via a lerobot checkpoint in a fresh temporary folder)."""
    from rewardkit.models.robometer import load_robometer

    folder = Path(tempfile.mkdtemp(prefix="tiny_robometer_"))
    return load_robometer(lerobot_robometer_checkpoint(folder, camera, seed), **options)
