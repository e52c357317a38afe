"""vlm_progress against a fake OpenAI-compatible server on 127.0.0.1: the GVL question (shuffled frames,
strict answers), the logprob mode, retries, timeouts, a server that is down, the answer cache, the key's
safety, online every k-th step and the CLI."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest
from fake_openai_server import FakeChatServer
from vlm_progress_helpers import (
    brightness_percent,
    gvl_answer,
    gvl_script,
    logprob_of,
    logprob_script,
    shown_frames,
)

from rewardkit.data.dataset import open_dataset
from rewardkit.errors import RewardkitError
from rewardkit.labelling import label_dataset, label_to_parquet
from rewardkit.models.vlm_progress import VLMAnswerError, build_vlm_progress
from rewardkit.models.vlm_progress.modeling_vlm_progress import (
    parse_gvl_answer,
    sample_positions,
    shuffled_order,
)
from rewardkit.online import RewardMonitor
from rewardkit.openai_client import BackendError

KEY_ENV = "RK_TEST_VLM_KEY"
SECRET = "sk-test-very-secret-4242"


@pytest.fixture
def dataset(tiny_dataset):
    return open_dataset(root=tiny_dataset[0])


def make(server_or_url, tmp_path, **options):
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    values = dict(base_url=url, cache_dir=str(tmp_path / "vlm_cache"), backoff_s=0.01, max_retries=2)
    values.update(options)
    return build_vlm_progress("fake-vlm", **values)


def ramp_frames(count: int) -> np.ndarray:
    """(count, 8, 8, 3) constant frames getting brighter in time: the fake server's progress rises."""
    levels = np.linspace(10, 240, count).round().astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, 8, 8, 3)).copy()


def expected_progress(dataset, episode_index: int, num_frames: int) -> np.ndarray:
    """What labelling must give: each sampled frame's brightness, interpolated in between."""
    frames = dataset.read_frames(episode_index, dataset.camera_keys[0])
    positions = sample_positions(len(frames), num_frames)
    values = [brightness_percent(frames[p]) / 100 for p in positions]
    return np.interp(np.arange(len(frames)), positions, values)


# ---- the pure pieces ------------------------------------------------------------------------------
def test_parse_gvl_answer_is_strict():
    np.testing.assert_allclose(parse_gvl_answer('{"1": 0, "2": 50, "3": 100}', 3), [0, 0.5, 1])
    np.testing.assert_allclose(parse_gvl_answer("```json\n[10, 20.5]\n```", 2), [0.1, 0.205])
    bad = {
        '{"1": 0, "2": 50}': "missing \\['3'\\]",
        '{"1": 0, "2": 50, "4": 1}': "unexpected \\['4'\\]",
        "[1, 2]": "2 values for 3 frames",
        "[1, 2, 101]": "frame 3: 101 is not a percentage",
        "[1, true, 3]": "frame 2: True is not a number",
        "The frames show 10%, 20%, 30%": "not JSON",
        '"50"': "must be a JSON object or list",
    }
    for text, message in bad.items():
        with pytest.raises(VLMAnswerError, match=message):
            parse_gvl_answer(text, 3)


def test_sample_positions_and_shuffle():
    assert sample_positions(24, 16).tolist()[:3] == [0, 2, 3] and sample_positions(24, 16)[-1] == 23
    assert len(sample_positions(24, 16)) == 16
    assert sample_positions(5, 16).tolist() == [0, 1, 2, 3, 4]
    order = shuffled_order(16, seed=0)
    assert sorted(order.tolist()) == list(range(16)) and order.tolist() != list(range(16))
    assert order.tolist() == shuffled_order(16, seed=0).tolist() != shuffled_order(16, seed=1).tolist()


# ---- GVL --------------------------------------------------------------------------------------------
def test_gvl_shows_shuffled_frames_and_maps_the_answer_back_to_time(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    frames = ramp_frames(8)
    with FakeChatServer(gvl_script) as server:
        model = make(server, tmp_path, api_key_env=KEY_ENV)
        progress = model.score_frames(frames, "stack the cups", "episode 5")
    np.testing.assert_allclose(progress, [brightness_percent(f) / 100 for f in frames], atol=1e-9)
    assert np.all(np.diff(progress) > 0)
    (request,) = server.requests
    sent = [brightness_percent(f) for f in shown_frames(request["body"])]
    assert sent != sorted(sent), "the frames must be shown out of time order"
    texts = "\n".join(p["text"] for p in request["body"]["messages"][0]["content"] if p["type"] == "text")
    assert "stack the cups" in texts and "Frame 8:" in texts and "SHUFFLED" in texts
    assert request["body"]["model"] == "fake-vlm" and request["auth"] == f"Bearer {SECRET}"


def test_labelling_interpolates_between_the_sampled_frames(dataset, tmp_path):
    with FakeChatServer(gvl_script) as server:
        model = make(server, tmp_path, num_frames=6, concurrency=2)
        labels = label_dataset(model, dataset, show_progress=False)
    assert len(server.requests) == len(dataset.episode_indices)  # one question per episode
    for episode in labels:
        np.testing.assert_allclose(
            episode.outputs["progress"], expected_progress(dataset, episode.episode_index, 6), atol=1e-6
        )
    assert (
        "3 requests" in model.usage_summary() and "300 prompt + 21 completion tokens" in model.usage_summary()
    )


def test_a_malformed_answer_is_asked_again_with_what_was_wrong(tmp_path):
    def script(number, prompt, body):
        return (200, "I think about 40% overall.") if number == 1 else gvl_script(number, prompt, body)

    frames = ramp_frames(5)
    with FakeChatServer(script) as server:
        progress = make(server, tmp_path).score_frames(frames, "t", "episode 2")
    np.testing.assert_allclose(progress, [brightness_percent(f) / 100 for f in frames])
    assert len(server.requests) == 2
    retry = server.requests[1]["body"]["messages"][0]["content"][-1]["text"]
    assert "could not be used" in retry and "not JSON" in retry


def test_a_wrong_frame_count_is_reported_with_the_episode_and_nothing_is_written(dataset, tmp_path):
    def script(number, prompt, body):
        return 200, json.dumps([50] * (len(shown_frames(body)) - 1))

    with FakeChatServer(script) as server:
        model = make(server, tmp_path, max_retries=1)
        with pytest.raises(RewardkitError, match=r"3 episode\(s\) got no usable answer") as error:
            label_to_parquet(
                model, "vlm_progress:fake-vlm", dataset, tmp_path / "out.parquet", show_progress=False
            )
    message = str(error.value)
    assert "episode 0: no usable answer from fake-vlm at http://127.0.0.1" in message
    assert "after 2 attempts" in message and "values for" in message
    assert len(server.requests) == 2 * len(dataset.episode_indices)
    assert not (tmp_path / "out.parquet").exists()
    assert not list((tmp_path / "vlm_cache").rglob("*.json")), "malformed answers are never cached"


# ---- transport failures ------------------------------------------------------------------------------
def test_a_hanging_server_times_out_with_a_clear_error(tmp_path):
    with FakeChatServer(lambda n, p, b: (200, gvl_answer(b), {"delay": 3})) as server:
        model = make(server, tmp_path, timeout_s=0.3, max_retries=1)
        with pytest.raises(BackendError, match=r"timed out \(episode 4\) after 2 attempts") as error:
            model.score_frames(ramp_frames(3), "t", "episode 4")
    assert "fake-vlm" in str(error.value) and server.base_url in str(error.value)


def test_429_and_503_are_retried_honouring_retry_after(tmp_path):
    def script(number, prompt, body):
        if number == 1:
            return 429, "slow down", {"headers": {"Retry-After": "0.2"}}
        if number == 2:
            return 503, "busy"
        return gvl_script(number, prompt, body)

    import time

    frames = ramp_frames(4)
    with FakeChatServer(script) as server:
        started = time.monotonic()
        progress = make(server, tmp_path, max_retries=3).score_frames(frames, "t")
        elapsed = time.monotonic() - started
    assert len(server.requests) == 3 and elapsed >= 0.2
    np.testing.assert_allclose(progress, [brightness_percent(f) / 100 for f in frames])


def test_a_server_that_keeps_failing_is_named_after_the_retries(tmp_path):
    with FakeChatServer(lambda n, p, b: (500, "boom")) as server:
        with pytest.raises(BackendError, match=r"HTTP 500.*\(episode 1\) after 3 attempts"):
            make(server, tmp_path).score_frames(ramp_frames(3), "t", "episode 1")
        assert len(server.requests) == 3
    with FakeChatServer(lambda n, p, b: (400, "bad request")) as server:  # not worth retrying
        with pytest.raises(BackendError, match="HTTP 400"):
            make(server, tmp_path).score_frames(ramp_frames(3), "t")
        assert len(server.requests) == 1


def test_a_server_that_is_down_stops_the_run_and_nothing_is_written(dataset, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    model = make(url, tmp_path, max_retries=1)
    with pytest.raises(BackendError, match=f"cannot reach {url}/chat/completions"):
        label_to_parquet(
            model, "vlm_progress:fake-vlm", dataset, tmp_path / "out.parquet", show_progress=False
        )
    assert not (tmp_path / "out.parquet").exists()
    assert not (tmp_path / "vlm_cache").exists() or not list((tmp_path / "vlm_cache").rglob("*"))


# ---- the cache -----------------------------------------------------------------------------------------
def test_a_rerun_is_served_from_the_cache_without_a_request(dataset, tmp_path):
    with FakeChatServer(gvl_script) as server:
        first = label_dataset(make(server, tmp_path, num_frames=8), dataset, show_progress=False)
        asked = len(server.requests)
        again = make(server, tmp_path, num_frames=8)
        second = label_dataset(again, dataset, show_progress=False)
        assert len(server.requests) == asked == len(dataset.episode_indices)
        assert again.usage_summary().startswith("0 requests, 6 cache hits")
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a.outputs["progress"], b.outputs["progress"])
        # another question (more frames) is not answered from the cache
        label_dataset(make(server, tmp_path, num_frames=9), dataset, show_progress=False)
        assert len(server.requests) == 2 * asked


def test_a_killed_run_resumes_asking_only_the_missing_episodes(dataset, tmp_path):
    def dies_on_episode_2(number, prompt, body):
        if len(shown_frames(body)) == 16:  # episode 2 is the 16-frame one (every frame is shown)
            return 400, "no"
        return gvl_script(number, prompt, body)

    with FakeChatServer(dies_on_episode_2) as server:
        with pytest.raises(BackendError):
            label_dataset(make(server, tmp_path, concurrency=1, num_frames=32), dataset, show_progress=False)
    with FakeChatServer(gvl_script) as server:
        label_dataset(make(server, tmp_path, num_frames=32), dataset, show_progress=False)
        assert [len(shown_frames(r["body"])) for r in server.requests] == [16]


# ---- the key ----------------------------------------------------------------------------------------
def test_the_key_is_never_logged_cached_or_saved(dataset, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)

    def script(number, prompt, body):
        return (
            (429, "later", {"headers": {"Retry-After": "0"}})
            if number == 1
            else gvl_script(number, prompt, body)
        )

    with FakeChatServer(script) as server:
        model = make(server, tmp_path, api_key_env=KEY_ENV)
        label_dataset(model, dataset, show_progress=False)
        model.save_pretrained(tmp_path / "saved")
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert "retrying" in caplog.text and SECRET not in caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in repr(model.client) + model.usage_summary() + repr(model.config)


def test_the_key_is_refused_over_plain_http_to_another_host(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with pytest.raises(RewardkitError, match="refusing to send the API key over plain http"):
        make("http://vlm.example.com/v1", tmp_path, api_key_env=KEY_ENV)
    make("http://vlm.example.com/v1", tmp_path, api_key_env=KEY_ENV, allow_insecure_http=True)
    make("https://vlm.example.com/v1", tmp_path, api_key_env=KEY_ENV)


def test_bad_options_are_named():
    with pytest.raises(RewardkitError, match=r"unknown option\(s\) \['frames'\]"):
        build_vlm_progress("m", frames=3)
    with pytest.raises(RewardkitError, match="served model name"):
        build_vlm_progress(None)
    with pytest.raises(RewardkitError, match="mode must be one of"):
        build_vlm_progress("m", mode="guess")


# ---- the logprob mode ----------------------------------------------------------------------------------
def test_logprob_mode_scores_each_prefix_and_normalises_per_episode(dataset, tmp_path):
    with FakeChatServer(logprob_script) as server:
        model = make(server, tmp_path, mode="logprob", num_frames=5)
        (labels,) = [e for e in label_dataset(model, dataset, show_progress=False) if e.episode_index == 1]
    frames = dataset.read_frames(1, dataset.camera_keys[0])
    positions = sample_positions(len(frames), 5)
    body = server.requests[0]["body"]
    assert body["prompt_logprobs"] == 0 and body["continue_final_message"] is True and body["max_tokens"] == 1
    assert body["messages"][0]["content"][-1]["text"].endswith("The answer is: True")
    # at most one question per sampled prefix (fewer when episodes start with the same frames: cached)
    assert 5 <= len(server.requests) <= 5 * len(dataset.episode_indices)
    assert all(len(shown_frames(r["body"])) <= 5 for r in server.requests)
    scores = np.array([-5.0 + brightness_percent(frames[p]) / 20.0 for p in positions])
    normalised = (scores - scores.min()) / (scores.max() - scores.min())
    np.testing.assert_allclose(labels.outputs["log_prob"][positions], scores, atol=1e-5)
    np.testing.assert_allclose(labels.outputs["progress"][positions], normalised, atol=1e-5)
    assert logprob_of(server.requests[0]["body"]) == pytest.approx(scores[0])


def test_logprob_mode_needs_prompt_logprobs(tmp_path):
    with FakeChatServer(gvl_script) as server:
        with pytest.raises(VLMAnswerError, match="needs a server that returns prompt log-probabilities"):
            make(server, tmp_path, mode="logprob").prefix_log_prob(ramp_frames(2), "t", "episode 0")


# ---- online and the CLI --------------------------------------------------------------------------------
def test_online_asks_every_kth_step_with_the_frames_seen_so_far(tmp_path):
    frames = ramp_frames(7)
    with FakeChatServer(gvl_script) as server:
        model = make(server, tmp_path, num_frames=4, online_every=3)
        monitor = RewardMonitor(model, fps=10)
        outputs = [monitor.step({"observation.images.cam": f, "task": "t"}) for f in frames]
    assert [len(shown_frames(r["body"])) for r in server.requests] == [1, 4, 4]  # steps 0, 3, 6
    assert [o.extras["asked"] for o in outputs] == [True, False, False, True, False, False, True]
    values = [brightness_percent(f) / 100 for f in frames]
    np.testing.assert_allclose([o.progress for o in outputs], [values[i] for i in (0, 0, 0, 3, 3, 3, 6)])


def test_cli_label_with_a_named_vlm_progress_model(tiny_dataset, tmp_path):
    import pyarrow.parquet as pq

    from rewardkit.cli import main

    out = tmp_path / "progress.parquet"
    with FakeChatServer(gvl_script) as server:
        options = json.dumps({"base_url": server.base_url, "cache_dir": str(tmp_path / "c"), "num_frames": 4})
        code = main(
            [
                "label",
                f"--dataset.root={tiny_dataset[0]}",
                "--model.type=vlm_progress",
                "--model.vlm=fake-vlm",
                f"--model.options={options}",
                f"--output={out}",
            ]  # fmt: skip
        )
    assert code == 0 and len(server.requests) == 3
    table = pq.read_table(out).to_pandas()
    dataset = open_dataset(root=tiny_dataset[0])
    episode = table[table["episode_index"] == 1].sort_values("frame_index")
    np.testing.assert_allclose(episode["progress_sparse"], expected_progress(dataset, 1, 4), atol=1e-6)
