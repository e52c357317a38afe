"""Annotate one episode with a VLM: sample frames, prompt for a timeline then JSON, validate, retry."""

from __future__ import annotations

import json
import logging
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardkit.annotate.backends import BackendError, Part, VLMBackend
from rewardkit.data.annotations import SubtaskAnnotation
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)


class AnswerError(RewardkitError):
    """The model's answer cannot be used (no JSON, wrong names or order, gaps, out of bounds)."""


class AnnotationError(RewardkitError):
    """An episode could not be annotated within the allowed attempts."""


def sample_frame_indices(
    length: int, fps: float, sample_fps: float, max_frames: int | None = 64
) -> np.ndarray:
    """Frame indices (N,) int64 sampled every 1/sample_fps seconds, first and last frame included.

    `sample_fps` may exceed 1 (finer than one frame a second) and is capped at the dataset's fps; at
    most `max_frames` are kept (evenly spread) so the request stays within the model's context.
    """
    if length <= 0:
        raise RewardkitError(f"episode length must be positive, got {length}")
    if sample_fps <= 0:
        raise RewardkitError(f"sample_fps must be positive, got {sample_fps}")
    step = max(1.0, fps / sample_fps)
    indices = np.unique(
        np.concatenate([np.round(np.arange(0, length - 1, step)).astype(np.int64), [length - 1]])
    )
    if max_frames is not None and len(indices) > max_frames:
        keep = np.unique(np.round(np.linspace(0, len(indices) - 1, max_frames)).astype(np.int64))
        indices = indices[keep]
    return indices


def build_prompt(names: Sequence[str], duration_s: float, task: str | None = None) -> str:
    """The instruction sent before the frames: the subtask list, the rules, then 'timeline, then JSON'."""
    listing = "\n".join(f"  {i + 1}. {name}" for i, name in enumerate(names))
    task_line = f"The task is: {task}\n" if task else ""
    return textwrap.dedent("""\
        You are a robotics vision system that segments one robot demonstration into subtasks.
        {task_line}The subtasks, in the order they happen (use these exact names, each once):
        {listing}

        The frames below are sampled from the episode; each is preceded by its time in seconds.
        The episode runs from 0.00 s to {duration:.2f} s (the time of its last frame).

        Rules:
        - A subtask starts at the first frame where the robot clearly begins it and ends where it is
          visibly completed; idle time belongs to the subtask before it.
        - Cover the whole episode: the first subtask starts at 0, the last ends at {duration:.2f},
          and each subtask starts exactly where the previous one ends (no gaps, no overlaps).
        - Durations can differ a lot; do not split the episode evenly unless the video shows it.

        Step 1: write a short timeline of what happens, with approximate times and the visible event
        at each boundary.
        Step 2: then give the final answer as JSON only, inside a ```json block, times in seconds:
        {{"subtasks": [{{"name": "EXACT NAME", "start": 0.0, "end": 1.5}}, ...]}}
        """).format(task_line=task_line, listing=listing.strip("\n"), duration=duration_s)


def _json_objects(text: str) -> list[Any]:
    """Every JSON object that can be decoded from `text`, fenced blocks first, last one last."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    for block in re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL):
        try:
            found.append(json.loads(block))
        except json.JSONDecodeError:
            continue
    if found:
        return found
    position = 0
    while (start := text.find("{", position)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
            found.append(value)
            position = end
        except json.JSONDecodeError:
            position = start + 1
    return found


def _seconds(value: Any) -> float:
    """Seconds from a number or a 'MM:SS(.ss)' / 'HH:MM:SS' / 'SS' string."""
    if isinstance(value, bool):
        raise AnswerError(f"time {value!r} is not a number")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = 0.0
            for piece in value.strip().rstrip("s").strip().split(":"):
                seconds = seconds * 60 + float(piece)
        except ValueError:
            raise AnswerError(f"time {value!r} is not seconds or MM:SS") from None
    else:
        raise AnswerError(f"time {value!r} is not a number")
    if not math.isfinite(seconds):
        raise AnswerError(f"time {value!r} is not finite")
    return seconds


def parse_answer(
    text: str, names: Sequence[str], length: int, fps: float, tolerance_s: float | None = None
) -> SubtaskAnnotation:
    """Turn a model answer into a validated `SubtaskAnnotation` (frames), or raise AnswerError.

    The last JSON object with a "subtasks" list is used; each item has "name" and "start"/"end"
    (seconds or MM:SS; lerobot's {"timestamps": {"start", "end"}} is accepted too). It must name every
    subtask of `names` once, in order; start <= end; stay within [0, duration]; and cover the episode
    with no gap or overlap larger than `tolerance_s` (default: 1.5 / fps or 0.5 s, whichever is
    larger). Within tolerance, boundaries are snapped: the first start to 0, the last end to the last
    frame, each start to the previous end. Times become frames as round(t * fps).
    """
    duration = (length - 1) / fps
    tolerance = tolerance_s if tolerance_s is not None else max(1.5 / fps, 0.5)
    candidates = [
        obj for obj in _json_objects(text) if isinstance(obj, dict) and isinstance(obj.get("subtasks"), list)
    ]
    if not candidates:
        raise AnswerError('no JSON object with a "subtasks" list in the answer')
    items = candidates[-1]["subtasks"]
    spans: list[tuple[str, float, float]] = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            raise AnswerError(f"subtask entry {item!r} has no name")
        times = item.get("timestamps", item)
        if not isinstance(times, dict) or "start" not in times or "end" not in times:
            raise AnswerError(f"subtask '{item['name']}' has no start/end")
        spans.append((str(item["name"]).strip(), _seconds(times["start"]), _seconds(times["end"])))
    answered = [name for name, _, _ in spans]
    unknown = [name for name in answered if name not in names]
    if unknown:
        raise AnswerError(f"unknown subtask name(s) {unknown}; use exactly {list(names)}")
    if answered != list(names):
        raise AnswerError(f"subtasks must be {list(names)} in this order, each once; got {answered}")
    for name, start, end in spans:
        if end < start:
            raise AnswerError(f"subtask '{name}' ends ({end:.2f} s) before it starts ({start:.2f} s)")
        if start < -tolerance or end > duration + tolerance:
            raise AnswerError(
                f"subtask '{name}' ({start:.2f}-{end:.2f} s) is outside the episode (0-{duration:.2f} s)"
            )
    if spans[0][1] > tolerance:
        raise AnswerError(f"the first subtask must start at 0, not {spans[0][1]:.2f} s")
    if spans[-1][2] < duration - tolerance:
        raise AnswerError(f"the last subtask must end at {duration:.2f} s, not {spans[-1][2]:.2f} s")
    for (name, _, end), (next_name, start, _) in zip(spans, spans[1:], strict=False):
        if abs(start - end) > tolerance:
            raise AnswerError(
                f"'{next_name}' must start where '{name}' ends ({end:.2f} s), not at {start:.2f} s"
            )
    boundaries = [0.0] + [end for _, _, end in spans[:-1]] + [duration]
    frames = [int(min(max(round(t * fps), 0), length - 1)) for t in boundaries]
    frames = list(np.maximum.accumulate(frames))
    annotation = SubtaskAnnotation(tuple(answered), tuple(frames[:-1]), tuple(frames[1:]))
    try:
        return annotation.validate(-1, length=length, known_names=names, in_name_order=True)
    except ValueError as e:  # cannot happen after snapping; kept as a guard
        raise AnswerError(str(e)) from None


def annotate_episode(
    backend: VLMBackend,
    frames: np.ndarray,
    frame_indices: np.ndarray,
    length: int,
    fps: float,
    names: Sequence[str],
    episode_index: int,
    task: str | None = None,
    max_retries: int = 2,
) -> SubtaskAnnotation:
    """Ask `backend` for the subtasks of one episode; retry on a malformed answer or a backend error.

    Args:
        frames: (N, H, W, 3) uint8, the sampled frames.
        frame_indices: (N,) their frame indices within the episode (for their times).
        length: T, frames in the episode; fps: the dataset's frame rate.
        names: the scheme's subtask names, in order.
        max_retries: extra attempts after the first; each retry tells the model what was wrong.

    Raises AnnotationError naming the episode when every attempt fails.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) != len(frame_indices):
        raise RewardkitError(
            f"episode {episode_index}: frames must be (N, H, W, 3) matching {len(frame_indices)} indices"
        )
    prompt = build_prompt(names, (length - 1) / fps, task)
    parts: list[Part] = [prompt]
    for index, frame in zip(frame_indices, frames, strict=True):
        parts.extend([f"t={index / fps:.2f} s", frame])
    problems: list[str] = []
    for attempt in range(max_retries + 1):
        request = list(parts)
        if problems:
            request.append(
                f"Your previous answer could not be used: {problems[-1]}. Write the timeline again, then "
                "the corrected JSON."
            )
        try:
            answer = backend.complete(request)
            return parse_answer(answer, names, length, fps)
        except (AnswerError, BackendError) as e:
            logger.warning("episode %d, attempt %d/%d: %s", episode_index, attempt + 1, max_retries + 1, e)
            problems.append(str(e))
    raise AnnotationError(
        f"episode {episode_index}: no usable annotation after {max_retries + 1} attempts; last problem: {problems[-1]}"
    )
