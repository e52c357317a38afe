"""A tiny random Qwen3-VL folder for the TOPReward tests, with a video processor whose pixel budget keeps
every prefix at the same resolution (the condition under which the prefix cache equals lerobot's scores)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

_models = str(Path(__file__).resolve().parent.parent)
if _models not in sys.path:
    sys.path.insert(0, _models)

from vlm_helpers import make_tiny_qwen3_vl  # noqa: E402

# The video processor's pixel budget (t*h*w) in Qwen3-VL checkpoints' video_preprocessor_config.json
# (Qwen/Qwen3-VL-8B-Instruct, lerobot's default TOPReward VLM; lerobot loads it unchanged): 256x256 frames
# stay 256x256 for prefixes of up to 384 frames.
QWEN3_VL_VIDEO_SIZE = {"shortest_edge": 4096, "longest_edge": 25165824}
TEST_VIDEO_SIZE = {"shortest_edge": 1024, "longest_edge": 32 * 32 * 4096}


def make_tiny_topreward_vlm(
    folder: Path, seed: int = 0, tokenizer: str = "byte", video_size: dict | None = None, **widths
) -> Path:
    """A tiny Qwen3-VL (`vlm_helpers.make_tiny_qwen3_vl`) whose video processor keeps any frame count of
    32x32 frames at 32x32 (`TEST_VIDEO_SIZE`: shortest_edge 1024 <= 2*32*32, longest_edge far above any
    test video). `tokenizer` ("byte" or "subword") and `video_size` (default `TEST_VIDEO_SIZE`; the
    benchmark passes `QWEN3_VL_VIDEO_SIZE`) let a benchmark give it a real Qwen3-VL's token proportions.

    Its output layer is scaled up 20x: a random init's logits are nearly flat, so the log-probabilities of
    different prefixes would differ by ~1e-3 and min-max progress would amplify float32 rounding."""
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    make_tiny_qwen3_vl(folder, seed=seed, tokenizer=tokenizer, **widths)
    model = Qwen3VLForConditionalGeneration.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    model.save_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    processor.video_processor.size = dict(video_size or TEST_VIDEO_SIZE)
    processor.save_pretrained(folder)
    return folder


_CONTRACT_VLM: dict[str, Path] = {}


def build_topreward_contract(camera: str, **options):
    """The contract suite's TOPReward: the tiny VLM (written once per process to a temporary folder),
    float32 on CPU, `normalize="running"` (causal, so an online step equals labelling), every frame scored."""
    import tempfile

    import rewardkit

    if "vlm" not in _CONTRACT_VLM:
        _CONTRACT_VLM["vlm"] = make_tiny_topreward_vlm(
            Path(tempfile.mkdtemp(prefix="topreward-vlm-")) / "vlm"
        )
    values = dict(torch_dtype="float32", device="cpu", normalize="running", camera=camera)
    values.update(options)
    return rewardkit.load(f"topreward:{_CONTRACT_VLM['vlm']}", **values)
