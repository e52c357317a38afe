"""Fake VLM answers for the vlm_progress tests and the contract suite: a server that scores each frame it is
shown by its content (mean brightness), so an answer depends only on the frames, never on their order."""

from __future__ import annotations

import base64
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_TESTS = str(Path(__file__).parents[2])
if _TESTS not in sys.path:  # the contract suite imports this module from tests/models
    sys.path.insert(0, _TESTS)

from fake_openai_server import FakeChatServer  # noqa: E402

USAGE = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}


def shown_frames(body: dict) -> list[np.ndarray]:
    """The frames of a request, decoded from their data URLs, in the order sent."""
    from PIL import Image

    frames = []
    for part in body["messages"][0]["content"]:
        if part["type"] == "image_url":
            data = part["image_url"]["url"].split(",", 1)[1]
            frames.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")))
    return frames


def brightness_percent(frame: np.ndarray) -> float:
    """What the fake model says a frame's completion is: its mean brightness in percent."""
    return float(frame.astype(np.float64).mean() / 255.0 * 100.0)


def gvl_answer(body: dict) -> str:
    """A well-formed GVL answer: {"1": pct, ...} for the frames shown."""
    return json.dumps({str(i): brightness_percent(f) for i, f in enumerate(shown_frames(body), start=1)})


def gvl_script(number: int, prompt: str, body: dict) -> tuple[int, str, dict[str, Any]]:
    return 200, gvl_answer(body), {"usage": USAGE}


def logprob_of(body: dict) -> float:
    """The fake "True" log-probability of a prefix: from the last frame's brightness."""
    return -5.0 + brightness_percent(shown_frames(body)[-1]) / 20.0


def logprob_script(number: int, prompt: str, body: dict) -> tuple[int, str, dict[str, Any]]:
    entries = [None, {"11": {"logprob": -1.0, "rank": 1, "decoded_token": " is"}}]
    entries.append({"2514": {"logprob": logprob_of(body), "rank": 1, "decoded_token": " True"}})
    return 200, "", {"usage": USAGE, "fields": {"prompt_logprobs": entries}}


_CONTRACT_SERVER: FakeChatServer | None = None


def contract_server() -> FakeChatServer:
    """One GVL fake server for the whole test session (the contract suite builds models many times)."""
    global _CONTRACT_SERVER
    if _CONTRACT_SERVER is None:
        _CONTRACT_SERVER = FakeChatServer(gvl_script).__enter__()
    return _CONTRACT_SERVER


def build_for_contract(dataset: Any, encoder: Any = None) -> Any:
    """A vlm_progress model on the fake server showing every frame (num_frames >= every episode's length),
    so labelling, frame subsets and online steps all see each frame's own score."""
    from rewardkit.models.vlm_progress import build_vlm_progress

    return build_vlm_progress(
        "fake-vlm",
        base_url=contract_server().base_url,
        camera=dataset.camera_keys[0],
        num_frames=32,
        max_retries=0,
        cache_dir=tempfile.mkdtemp(prefix="vlm_progress_contract_"),
    ).eval()
