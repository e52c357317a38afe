"""TOPReward with a prefix cache: parity with lerobot's per-prefix TOPReward on a tiny random Qwen3-VL,
save/load, online, and the errors a user meets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lerobot.lerobot_types import TransitionKey
from lerobot.rewards.topreward import TOPRewardConfig, TOPRewardModel
from lerobot.rewards.topreward.compute_rabc_weights import compute_instruction_rewards_for_prefixes
from lerobot.rewards.topreward.processor_topreward import TOPRewardEncoderProcessorStep
from topreward_helpers import make_tiny_topreward_vlm

import rewardkit
from rewardkit.errors import RewardkitError
from rewardkit.models.base import CheckpointError, EpisodeInputs
from rewardkit.models.topreward.modeling_topreward import suffix_batches

TASK = "push the block to the right"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return make_tiny_topreward_vlm(tmp_path_factory.mktemp("topreward") / "vlm")


@pytest.fixture(scope="module")
def model(vlm):
    return rewardkit.load(f"topreward:{vlm}", torch_dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def lerobot(vlm):
    config = TOPRewardConfig(vlm_name=str(vlm), device="cpu", torch_dtype="float32")
    encoder = TOPRewardEncoderProcessorStep(
        vlm_name=str(vlm), image_key=config.image_key, max_frames=None, fps=config.fps
    )
    return TOPRewardModel(config).eval(), encoder


def random_frames(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (length, 32, 32, 3), dtype=np.uint8)


def lerobot_scores(lerobot, frames: np.ndarray, task: str) -> np.ndarray:
    """lerobot's TOPReward: one full forward pass per prefix frames[:L], L = 1..T."""
    reward_model, encoder = lerobot
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    scores = []
    for length in range(1, len(frames) + 1):
        transition = {
            TransitionKey.OBSERVATION: {reward_model.config.image_key: video[:length][None]},
            TransitionKey.COMPLEMENTARY_DATA: {"task": task},
        }
        scores.append(float(reward_model.compute_reward(encoder(transition)[TransitionKey.OBSERVATION])))
    return np.asarray(scores)


def inputs_for(frames: np.ndarray, frame_indices=None) -> EpisodeInputs:
    return EpisodeInputs(
        episode_index=0,
        task=TASK,
        length=len(frames),
        fps=10,
        frames=lambda camera: frames,
        frame_indices=frame_indices,
    )


@pytest.mark.parametrize("length", [8, 9])  # the last pair complete, and padded
def test_prefix_cache_equals_lerobot_per_prefix_scores(model, lerobot, length):
    frames = random_frames(length, seed=length)
    ours = model.score_prefix_lengths(frames, TASK, np.arange(1, length + 1))
    expected = lerobot_scores(lerobot, frames, TASK)
    assert np.ptp(expected) > 1e-4  # the scores depend on the prefix: the equality can fail
    np.testing.assert_allclose(ours, expected, atol=1e-3, rtol=0)


def test_label_episode_equals_lerobot_labelling_at_its_anchors(vlm, lerobot):
    """lerobot's labelling (15 anchors by default; 5 here on 17 frames): min-max over the anchors, then
    linear interpolation, equals ours with num_anchors=5; log_prob holds the raw scores at the anchors."""
    model = rewardkit.load(f"topreward:{vlm}", torch_dtype="float32", device="cpu", num_anchors=5)
    frames = random_frames(17, seed=3)
    reward_model, encoder = lerobot
    key = reward_model.config.image_key
    samples = [{key: torch.from_numpy(frame).permute(2, 0, 1)} for frame in frames]
    expected = compute_instruction_rewards_for_prefixes(
        reward_model, encoder, samples, 0, len(frames), TASK, key, 5, "cpu"
    )
    labels = model.label_episode(inputs_for(frames))
    np.testing.assert_allclose(labels["progress"], expected, atol=1e-3)
    anchors = np.array([1, 5, 9, 13, 17])
    raw = lerobot_scores(lerobot, frames, TASK)[anchors - 1]
    np.testing.assert_allclose(labels["log_prob"][anchors - 1], raw, atol=1e-3)


def test_odd_prefixes_in_one_pack_equal_one_at_a_time(vlm):
    """Packing many suffixes (each with its own cut of the cache, some with their own frame pair) into one
    forward pass gives what scoring them one by one gives."""
    packed = rewardkit.load(f"topreward:{vlm}", torch_dtype="float32", device="cpu", suffix_batch_size=64)
    single = rewardkit.load(f"topreward:{vlm}", torch_dtype="float32", device="cpu", suffix_batch_size=1)
    frames = random_frames(11, seed=5)
    lengths = np.arange(1, 12)
    np.testing.assert_allclose(
        packed.score_prefix_lengths(frames, TASK, lengths),
        single.score_prefix_lengths(frames, TASK, lengths),
        atol=1e-5,
    )


def test_suffix_batches_hold_one_length_each_ordered_by_cut():
    """Even anchors' suffixes (the prompt) never share a pass with odd anchors' (own pair + prompt), so no
    row is padded; within a length, rows go by cut and at most `size` per pass; every suffix once."""
    lengths = [35, 107, 35, 107, 35, 108, 35]
    cuts = [900, 700, 100, 300, 500, 1100, 1300]
    assert suffix_batches(lengths, cuts, size=2) == [[2, 4], [0, 6], [3, 1], [5]]
    assert suffix_batches(lengths, cuts, size=16) == [[2, 4, 0, 6], [3, 1], [5]]
    assert suffix_batches([], [], size=4) == []


def test_prefix_cache_equals_lerobot_with_a_subword_tokenizer(tmp_path):
    """The benchmark's realistic setup: a BPE that merges words (as Qwen's does) still tokenizes the
    prompt pieces as the whole prompt (checked at load), and the cache equals lerobot's per-prefix scores."""
    folder = make_tiny_topreward_vlm(tmp_path / "vlm", tokenizer="subword")
    config = TOPRewardConfig(vlm_name=str(folder), device="cpu", torch_dtype="float32")
    encoder = TOPRewardEncoderProcessorStep(
        vlm_name=str(folder), image_key=config.image_key, max_frames=None, fps=config.fps
    )
    ours = rewardkit.load(f"topreward:{folder}", torch_dtype="float32", device="cpu")
    header, tail = ours.prompt_pieces(TASK)
    assert len(ours._tokenizer(header + tail)["input_ids"]) < 60  # byte-level: ~190
    frames = random_frames(5, seed=11)
    np.testing.assert_allclose(
        ours.score_prefix_lengths(frames, TASK, np.arange(1, 6)),
        lerobot_scores((TOPRewardModel(config).eval(), encoder), frames, TASK),
        atol=1e-3,
    )


def test_save_writes_config_only_and_load_rebuilds_it(model, vlm, tmp_path):
    configured = rewardkit.load(
        f"topreward:{vlm}", torch_dtype="float32", device="cpu", num_anchors=4, fps=4.0
    )
    configured.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json"]
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["type"] == "rewardkit_topreward" and saved["vlm"] == str(vlm)
    loaded = rewardkit.load(tmp_path / "ckpt")
    assert loaded.config.num_anchors == 4 and loaded.config.fps == 4.0
    frames = random_frames(10, seed=1)
    expected = configured.label_episode(inputs_for(frames))
    got = loaded.label_episode(inputs_for(frames))
    for key in ("progress", "log_prob"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6)
    # fps is part of the prompt (timestamps): a different fps changes the scores
    assert not np.allclose(expected["log_prob"], model.label_episode(inputs_for(frames))["log_prob"])


def test_frame_subset_is_the_same_frames_of_a_full_pass(model):
    frames = random_frames(12, seed=2)
    full = model.label_episode(inputs_for(frames))
    subset = np.array([0, 3, 4, 11])
    got = model.label_episode(inputs_for(frames, subset))
    for key in ("progress", "log_prob"):
        np.testing.assert_allclose(got[key], full[key][subset], atol=1e-6)
    assert full["progress"].min() == 0.0 and full["progress"].max() == 1.0  # per-episode min-max


def test_online_equals_running_labelling_and_every_k_holds(vlm):
    model = rewardkit.load(f"topreward:{vlm}", torch_dtype="float32", device="cpu", normalize="running")
    frames = random_frames(9, seed=4)
    labels = model.label_episode(inputs_for(frames))
    online = model.online()
    for frame in frames[:3]:  # a previous episode must not leak past reset()
        online.step_features(online.encode({"observation.images.top": frame, "task": "other task"}))
    online.reset()
    outputs = [
        online.step_features(online.encode({"observation.images.top": f, "task": TASK})) for f in frames
    ]
    np.testing.assert_allclose([o.extras["log_prob"] for o in outputs], labels["log_prob"], atol=1e-4)
    np.testing.assert_allclose([o.progress for o in outputs], labels["progress"], atol=1e-4)
    sparse = model.online(every=3)
    held = [sparse.step_features(sparse.encode({"observation.images.top": f, "task": TASK})) for f in frames]
    np.testing.assert_allclose(
        [held[i].extras["log_prob"] for i in (0, 3, 6)], labels["log_prob"][[0, 3, 6]], atol=1e-4
    )
    assert held[1] is held[0] and held[5] is held[3]


def test_online_refuses_episode_normalisation(model):
    from rewardkit.online import RewardMonitor

    with pytest.raises(RewardkitError, match="causal.*normalize='running'"):
        RewardMonitor(model, fps=10)


def test_a_vlm_folder_that_is_not_qwen3_vl_is_refused_by_name(tmp_path):
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match=rf"{folder}.*'llama'.*Qwen3-VL"):
        rewardkit.load(f"topreward:{folder}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=rf"{empty} has no config.json"):
        rewardkit.load(f"topreward:{empty}")


def test_bad_options_are_named(vlm):
    with pytest.raises(RewardkitError, match="unknown options \\['num_anchor'\\]"):
        rewardkit.load(f"topreward:{vlm}", num_anchor=3)
    with pytest.raises(RewardkitError, match="normalize must be one of"):
        rewardkit.load(f"topreward:{vlm}", normalize="global")


def test_scoring_suffixes_leaves_the_cache_as_it_was(model):
    """The suffix rows read the cache (broadcast per layer) and never grow it: scoring twice gives the same
    scores and the cache keeps its length, so online steps can keep extending it."""
    frames = random_frames(6, seed=7)
    header, tail = model.prompt_pieces(TASK)
    tail_ids = model._tokenizer(tail, add_special_tokens=False)["input_ids"]
    video = model.resize_frames(frames, model.frame_size(32, 32))
    patches, grid = model.pixel_values([video])
    per_pair = int(grid[0, 1] * grid[0, 2]) // model._merge**2
    prefix = model.start_prefix(model._tokenizer(header)["input_ids"], torch.tensor([[1, 2, 2]]))
    ids, cuts = [], []
    for g in range(3):
        ids += model._pair_ids(2 * g, 2 * g + 1, per_pair)
        cuts.append(len(ids))
    model.extend_prefix(prefix, ids, patches, grid, cuts)
    length = prefix.cache.get_seq_length()
    suffixes = [(cut, tail_ids, None) for cut in (1, 2, 3)]
    first = model.score_suffixes(prefix, suffixes)
    assert prefix.cache.get_seq_length() == length == len(prefix.ids)
    np.testing.assert_array_equal(model.score_suffixes(prefix, suffixes), first)
    np.testing.assert_allclose(
        first, model.score_prefix_lengths(frames, TASK, np.array([2, 4, 6])), atol=1e-5
    )
