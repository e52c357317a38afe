"""Fixtures for the annotate tests: a writable copy of the shared tiny dataset, a fake VLM server."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from fake_openai_server import FakeChatServer


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path):
    """A writable copy of the tiny dataset (3 episodes of 20, 24, 16 frames at 10 fps)."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset[0], root)
    return root


def good_answer(prompt: str, names: list[str]) -> str:
    """A well-formed answer for the episode described in `prompt`: equal-length subtasks, with a timeline."""
    duration = float(re.search(r"runs from 0\.00 s to ([0-9.]+) s", prompt).group(1))
    cuts = [round(duration * k / len(names), 2) for k in range(len(names) + 1)]
    cuts[-1] = duration
    timeline = "\n".join(
        f"- {n}: {a:.2f}s to {b:.2f}s, the arm moves" for n, a, b in zip(names, cuts, cuts[1:], strict=False)
    )
    spans = [{"name": n, "start": a, "end": b} for n, a, b in zip(names, cuts, cuts[1:], strict=False)]
    return f"Timeline:\n{timeline}\n\n```json\n{json.dumps({'subtasks': spans})}\n```"


@pytest.fixture
def chat_server():
    """The FakeChatServer class (use as `with chat_server(script) as server:`)."""
    return FakeChatServer


@pytest.fixture
def answer_for():
    """`answer_for(prompt, names)`: a well-formed model answer for the episode the prompt describes."""
    return good_answer
