"""The VLM annotator: frame sampling, answer parsing and validation, retries, both backends (faked)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from rewardkit.annotate import (
    AnnotationError,
    AnswerError,
    BackendError,
    OpenAICompatibleBackend,
    TransformersBackend,
    annotate_episode,
    parse_answer,
    sample_frame_indices,
)
from rewardkit.data.annotations import SubtaskAnnotation

NAMES = ["reach", "grasp", "place"]


def test_sample_frame_indices_finer_than_one_per_second_and_capped():
    indices = sample_frame_indices(length=30, fps=10, sample_fps=4)
    assert indices[0] == 0 and indices[-1] == 29
    assert np.all(np.diff(indices) <= 3) and len(indices) >= 12  # ~every 2.5 frames
    assert sample_frame_indices(30, 10, 100).tolist() == list(range(30))  # capped at the dataset's fps
    capped = sample_frame_indices(1000, 30, 30, max_frames=16)
    assert len(capped) == 16 and capped[0] == 0 and capped[-1] == 999


def test_parse_answer_timeline_then_json_in_seconds():
    text = (
        "Timeline:\n- reach {0-0.8}\n```json\n"
        + json.dumps(
            {
                "subtasks": [
                    {"name": "reach", "start": 0.0, "end": 0.8},
                    {"name": "grasp", "start": 0.8, "end": 1.3},
                    {"name": "place", "start": 1.3, "end": 1.9},
                ]
            }
        )
        + "\n```"
    )
    assert parse_answer(text, NAMES, length=20, fps=10) == SubtaskAnnotation(NAMES, [0, 8, 13], [8, 13, 19])


def test_parse_answer_accepts_lerobot_timestamps_and_snaps_small_gaps():
    text = (
        'blah {"subtasks": ['
        '{"name": "reach", "timestamps": {"start": "00:00", "end": "00:04"}},'
        '{"name": "grasp", "timestamps": {"start": "00:04.2", "end": "00:07"}},'
        '{"name": "place", "timestamps": {"start": "00:07", "end": "00:09.8"}}]}'
    )
    # 100 frames at 10 fps: last frame at 9.9 s; 0.2 s gap and 0.1 s short end are within tolerance
    assert parse_answer(text, NAMES, length=100, fps=10) == SubtaskAnnotation(
        NAMES, [0, 40, 70], [40, 70, 99]
    )


@pytest.mark.parametrize(
    "spans, message",
    [
        ([("reach", 0, 1), ("place", 1, 1.5), ("grasp", 1.5, 1.9)], "in this order"),
        ([("reach", 0, 1), ("lift", 1, 1.5), ("place", 1.5, 1.9)], "unknown subtask name"),
        ([("reach", 0, 1)], "in this order"),
        ([("reach", 0, 0.5), ("grasp", 1.2, 1.5), ("place", 1.5, 1.9)], "must start where"),
        ([("reach", 0, 1), ("grasp", 1, 1.5), ("place", 1.5, 9.0)], "outside the episode"),
        ([("reach", 0.9, 1), ("grasp", 1, 1.5), ("place", 1.5, 1.9)], "first subtask must start at 0"),
        ([("reach", 0, 1), ("grasp", 1, 1.2), ("place", 1.2, 1.3)], "last subtask must end"),
        ([("reach", 0, 1), ("grasp", 1, 0.7), ("place", 0.7, 1.9)], "ends .* before it starts"),
    ],
)
def test_parse_answer_rejects_invalid_answers(spans, message):
    text = json.dumps({"subtasks": [{"name": n, "start": a, "end": b} for n, a, b in spans]})
    with pytest.raises(AnswerError, match=message):
        parse_answer(text, NAMES, length=20, fps=10)


def test_parse_answer_without_json():
    with pytest.raises(AnswerError, match="no JSON"):
        parse_answer("I think the robot reaches, then grasps.", NAMES, 20, 10)


class ScriptedBackend:
    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def complete(self, parts):
        self.requests.append(list(parts))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_annotate_episode_retries_malformed_answers_and_reports_the_problem(answer_for):
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    indices = np.array([0, 10, 19])
    prompt_probe = ScriptedBackend(["x"])
    with pytest.raises(AnnotationError):
        annotate_episode(prompt_probe, frames, indices, 20, 10, NAMES, 4, max_retries=0)
    good = answer_for(prompt_probe.requests[0][0], NAMES)
    backend = ScriptedBackend(["no json here", BackendError("HTTP 502"), good])
    annotation = annotate_episode(backend, frames, indices, 20, 10, NAMES, episode_index=4, max_retries=2)
    assert (
        annotation.names == tuple(NAMES)
        and annotation.start_frames[0] == 0
        and annotation.end_frames[-1] == 19
    )
    assert len(backend.requests) == 3
    first = backend.requests[0]
    assert [p for p in first if isinstance(p, str)][1:] == ["t=0.00 s", "t=1.00 s", "t=1.90 s"]
    assert sum(isinstance(p, np.ndarray) for p in first) == 3
    assert "no JSON" in backend.requests[1][-1] and "HTTP 502" in backend.requests[2][-1]
    with pytest.raises(AnnotationError, match="episode 7: no usable annotation after 2 attempts"):
        annotate_episode(ScriptedBackend(["{}", "{}"]), frames, indices, 20, 10, NAMES, 7, max_retries=1)


def test_openai_backend_sends_images_as_data_urls_and_reports_http_errors(chat_server):
    frame = np.zeros((12, 16, 3), np.uint8)
    frame[:, :8] = 255

    def script(number, prompt, body):
        return (200, "hello") if number == 1 else (500, "boom")

    with chat_server(script) as server:
        backend = OpenAICompatibleBackend(server.base_url, "fake-vlm", api_key="secret", image_format="png")
        assert backend.complete(["describe", frame]) == "hello"
        with pytest.raises(BackendError, match="HTTP 500"):
            backend.complete(["again"])
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    content = request["body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "describe"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, frame)  # png: lossless
    with pytest.raises(BackendError, match="cannot reach"):
        OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m", timeout_s=2).complete(["x"])


class FakeTokens(dict):
    def to(self, device):
        self["moved_to"] = device
        return self


class FakeProcessor:
    """Stands in for a transformers processor: records the chat, 'tokenizes' to 5 input ids."""

    def __init__(self):
        self.messages = None

    def apply_chat_template(self, messages, **kwargs):
        assert kwargs["add_generation_prompt"] and kwargs["tokenize"] and kwargs["return_dict"]
        self.messages = messages
        return FakeTokens(input_ids=np.zeros((1, 5), np.int64))

    def batch_decode(self, tokens, skip_special_tokens):
        assert tokens.shape == (1, 2)  # only the new tokens are decoded
        return ["decoded answer"]


class FakeModel:
    device = "cpu"

    def generate(self, input_ids, moved_to, max_new_tokens, do_sample):
        assert moved_to == "cpu" and not do_sample and max_new_tokens == 64
        return np.concatenate([input_ids, np.ones((1, 2), np.int64)], axis=1)


def test_transformers_backend_with_a_fake_model():
    processor = FakeProcessor()
    backend = TransformersBackend(model=FakeModel(), processor=processor, max_new_tokens=64)
    assert backend.complete(["look", np.zeros((4, 4, 3), np.uint8)]) == "decoded answer"
    content = processor.messages[0]["content"]
    assert content[0] == {"type": "text", "text": "look"} and content[1]["type"] == "image"
    assert content[1]["image"].size == (4, 4)
    with pytest.raises(ValueError, match="model_id"):
        TransformersBackend()
