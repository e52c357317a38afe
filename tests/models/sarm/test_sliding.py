"""Sliding causal SARM: one pass per frame-gap phase equals every window computed alone; the receptive
field is exactly the window; the online stream equals the labels."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sarm_helpers import FEATURE_DIM, tiny_config

from rewardkit.errors import RewardkitError
from rewardkit.models.base import EpisodeInputs
from rewardkit.models.sarm import SARMConfig, SARMRewardModel
from rewardkit.models.sarm.configuration_sarm import DEFAULT_FRAME_TOKENS
from rewardkit.models.sarm.modeling_sarm import window_indices
from rewardkit.models.sarm.sliding import spread_bands

CAMERAS = ["observation.images.top", "observation.images.wrist"]
# every equivalence below holds for both frame layouts (a frame as 4 tokens, or as one fused token)
LAYOUTS = pytest.mark.parametrize("frame_tokens", ["separate", "fused"])


def _model(**overrides) -> SARMRewardModel:
    torch.manual_seed(0)
    values = dict(
        cameras=CAMERAS, num_layers=4, n_obs_steps=5, frame_gap=3, temporal_bands=[0, 2, 1, 2],
        annotation_mode="dual", sparse_subtask_names=["x", "y"], sparse_temporal_proportions=[0.4, 0.6],
        dense_subtask_names=["a", "b", "c"], dense_temporal_proportions=[0.2, 0.5, 0.3],
    )  # fmt: skip
    values.update(overrides)
    model = SARMRewardModel(tiny_config(**values)).eval()
    with torch.no_grad():  # larger weights than the init (not the norms and heads), so frames clearly differ
        for name, parameter in model.named_parameters():
            if not any(part in name for part in ("norm", "fusion_backbone.0", "heads")):
                parameter.normal_(0.0, 0.3)
    return model


def _episode(length: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = {c: rng.normal(size=(length, FEATURE_DIM)).astype(np.float32) for c in CAMERAS}
    text = rng.normal(size=FEATURE_DIM).astype(np.float32)
    state = rng.normal(size=(length, 3)).astype(np.float32)
    return features, text, state


def _inputs(features, text, state, **kwargs) -> EpisodeInputs:
    length = len(state)
    return EpisodeInputs(
        0, "task", length, 10, state=state, image_features=features, text_features=text, **kwargs
    )


def _windows_fused(model, features, text, state):
    """Every frame's fused features from its own window computed alone (the definition)."""
    length = len(state)
    index = window_indices(length, np.arange(length), model.config.window_offsets)
    image = torch.stack([torch.from_numpy(features[c]) for c in CAMERAS])[:, index].transpose(0, 1)
    prepared = model._prepare_state(
        torch.from_numpy(state)[index], length, index.shape[1], torch.device("cpu")
    )
    text_batch = torch.from_numpy(text)[None].expand(length, -1)
    return [
        m.fused_windows(image, text_batch, prepared)[:, -1] for m in (model.stage_model, model.subtask_model)
    ]


def _episode_fused(model, features, text, state):
    image = torch.stack([torch.from_numpy(features[c]) for c in CAMERAS])
    length = len(state)
    prepared = model._prepare_state(torch.from_numpy(state)[None], 1, length, torch.device("cpu"))[0]
    gap = model.config.frame_gap
    return [
        m.fused_episode(image, torch.from_numpy(text), prepared, gap, length)
        for m in (model.stage_model, model.subtask_model)
    ]


@torch.no_grad()
@LAYOUTS
def test_one_pass_per_phase_equals_every_window_computed_alone(frame_tokens):
    model = _model(frame_tokens=frame_tokens)
    length = 41  # phases of 14 frames: far longer than a window (6 frames), so leaks would show
    features, text, state = _episode(length)
    per_window = _windows_fused(model, features, text, state)
    one_pass = _episode_fused(model, features, text, state)
    for alone, shared in zip(per_window, one_pass, strict=True):
        assert shared.shape == alone.shape == (length, model.config.hidden_dim)
        assert float(alone.std(0).mean()) > 0.1  # frames differ: the comparison is not trivial
        torch.testing.assert_close(shared, alone, atol=1e-5, rtol=1e-5)
    # and the labels: progress and stage probabilities of both heads equal the per-window predictions
    labels = model.label_episode(_inputs(features, text, state))
    index = window_indices(length, np.arange(length), model.config.window_offsets)
    batch = {
        "image_features": torch.stack([torch.from_numpy(features[c]) for c in CAMERAS])[:, index].transpose(
            0, 1
        ),
        "text_features": torch.from_numpy(text)[None].expand(length, -1),
        "state": torch.from_numpy(state)[index],
    }
    for scheme, suffix in (("sparse", ""), ("dense", "_dense")):
        progress, probs = model.predict_scheme(batch, scheme)
        np.testing.assert_allclose(labels[f"progress{suffix}"], progress[:, -1].numpy(), atol=1e-5)
        np.testing.assert_allclose(labels[f"stage_probs{suffix}"], probs[:, -1].numpy(), atol=1e-5)
    assert np.ptp(labels["stage_probs_dense"], axis=0).max() > 0.05  # frames get different outputs


@torch.no_grad()
@LAYOUTS
def test_receptive_field_is_exactly_the_window(frame_tokens):
    model = _model(frame_tokens=frame_tokens)
    length, gap, steps = 41, 3, 5
    features, text, state = _episode(length)
    base = _episode_fused(model, features, text, state)[0]
    t = 30

    def changed(frame: int) -> bool:
        moved = {c: f.copy() for c, f in features.items()}
        moved[CAMERAS[1]][frame] += 1.0
        return not torch.allclose(_episode_fused(model, moved, text, state)[0][t], base[t], atol=1e-6)

    assert changed(t) and changed(t - gap) and changed(t - steps * gap)  # inside the window
    assert not changed(t - (steps + 1) * gap)  # one gap before the window
    assert not changed(t - 1) and not changed(t + 1) and not changed(t + gap)  # other phases, future


@torch.no_grad()
@LAYOUTS
def test_online_stream_equals_labels_from_the_first_frame(frame_tokens):
    model = _model(frame_tokens=frame_tokens)
    length = 20
    features, text, state = _episode(length, seed=1)
    labels = model.label_episode(_inputs(features, text, state))
    stream = model.online_stream()
    image = torch.stack([torch.from_numpy(features[c]) for c in CAMERAS])
    for _ in range(2):  # reset starts a new episode
        outputs = [
            stream.step(image[:, t], torch.from_numpy(text), torch.from_numpy(state[t]))
            for t in range(length)
        ]
        for scheme, suffix in (("sparse", ""), ("dense", "_dense")):
            np.testing.assert_allclose(
                [o[scheme][0] for o in outputs], labels[f"progress{suffix}"], atol=1e-5
            )
            np.testing.assert_allclose(
                np.stack([o[scheme][1] for o in outputs]), labels[f"stage_probs{suffix}"], atol=1e-5
            )
        assert stream.count == length
        stream.reset()
        assert stream.count == 0


@LAYOUTS
def test_stride_subset_equals_the_full_labels(frame_tokens):
    model = _model(frame_tokens=frame_tokens)
    features, text, state = _episode(25)
    full = model.label_episode(_inputs(features, text, state))
    subset = model.label_episode(_inputs(features, text, state, frame_indices=np.array([0, 7, 13])))
    np.testing.assert_allclose(subset["progress_dense"], full["progress_dense"][[0, 7, 13]], atol=1e-6)


def test_bands_default_and_validation():
    assert spread_bands(8, 8) == [1] * 8
    assert spread_bands(8, 4) == [2] * 4
    assert spread_bands(2, 4) == [0, 0, 1, 1]
    assert spread_bands(5, 3) == [1, 2, 2]
    config = SARMConfig()
    assert config.resolved_architecture == "sliding" and config.layer_bands == [1] * 8
    assert SARMConfig(window="centred").resolved_architecture == "lerobot"
    # resolved from the fields as they are when the model is built, then pinned in the model's own config
    # (the caller's config is left as it was)
    config.num_layers, config.hidden_dim, config.num_heads, config.image_dim, config.text_dim = 2, 16, 2, 8, 8
    model = SARMRewardModel(config)
    assert len(model.stage_model.layers) == 2 and model.config.temporal_bands == [4, 4]
    assert model.config.architecture == "sliding"
    assert config.temporal_bands is None and config.architecture is None
    with pytest.raises(ValueError, match="adding up to n_obs_steps"):
        SARMConfig(num_layers=2, n_obs_steps=4, temporal_bands=[1, 2], max_rewind_steps=2)
    with pytest.raises(ValueError, match="causal"):
        SARMConfig(window="centred", architecture="sliding")
    with pytest.raises(ValueError, match="architecture must be one of"):
        SARMConfig(architecture="other")


@LAYOUTS
def test_padded_training_windows_compute_only_valid_frames_with_the_same_outputs(frame_tokens):
    """Training batches with padding run only their valid frames, packed end to end in one sequence: the
    valid positions' features (and so the loss) equal the padded computation's, gradients included."""
    model = _model(dropout=0.0, frame_tokens=frame_tokens).train()
    rng = np.random.default_rng(3)
    batch, frames = 4, 8
    image = torch.from_numpy(rng.normal(size=(batch, len(CAMERAS), frames, FEATURE_DIM)).astype(np.float32))
    text = torch.from_numpy(rng.normal(size=(batch, FEATURE_DIM)).astype(np.float32))
    state = torch.from_numpy(rng.normal(size=(batch, frames, 8)).astype(np.float32))
    lengths = torch.tensor([8, 5, 6, 3])
    padding = torch.arange(frames)[None, :] >= lengths[:, None]
    for trunk in (model.stage_model, model.subtask_model):
        full = trunk.fused_windows(image, text, state)  # every position computed (padding included)
        packed = trunk.fused_windows(image, text, state, padding)
        valid = ~padding
        torch.testing.assert_close(packed[valid], full[valid], atol=1e-5, rtol=1e-5)
        assert float(packed[padding].abs().max()) == 0.0
        grads = []
        for out in (full, packed):
            trunk.zero_grad()
            out[valid].square().sum().backward(retain_graph=True)
            grads.append(trunk.layers[-1].in_proj.weight.grad.clone())
        torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)
        assert float(grads[0].abs().max()) > 0


@torch.no_grad()
@pytest.mark.parametrize("chunk_frames", [1, 5, 7, 12, 40])
@LAYOUTS
def test_chunked_phases_equal_one_pass(chunk_frames, frame_tokens):
    """Labelling in chunks of positions (each layer carrying its last band positions' keys and values)
    gives the one-pass features to 1e-6, including chunks shorter than a layer's band (chunk 1 and 5 with
    3 phases: one position per chunk) and a last chunk cut short."""
    model = _model(frame_tokens=frame_tokens)
    length = 41
    features, text, state = _episode(length, seed=1)
    image = torch.stack([torch.from_numpy(features[c]) for c in CAMERAS])
    prepared = model._prepare_state(torch.from_numpy(state)[None], 1, length, torch.device("cpu"))[0]
    for trunk in (model.stage_model, model.subtask_model):
        # in float64, so that float32 rounding of differently shaped matmuls (~1e-6) cannot hide or fake
        # a difference
        trunk = copy.deepcopy(trunk).double()
        args = (image.double(), torch.from_numpy(text).double(), prepared.double(), 3, length)
        whole = trunk.fused_episode(*args)
        chunked = trunk.fused_episode(*args, chunk_frames)
        assert float(whole.std(0).mean()) > 0.1
        torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    # through label_episode: the config's chunk size is used, and the labels do not change
    labels = model.label_episode(_inputs(features, text, state))
    model.config.label_chunk_frames = chunk_frames
    chunked_labels = model.label_episode(_inputs(features, text, state))
    for key, value in labels.items():
        np.testing.assert_allclose(chunked_labels[key], value, atol=1e-6)


def test_label_chunk_frames_must_be_positive():
    with pytest.raises(RewardkitError, match="label_chunk_frames"):
        tiny_config(label_chunk_frames=0)


def test_frame_tokens_pinned_and_fused_layout():
    """A new model pins the default layout in its own config; "fused" gives ONE token per frame (the
    fusion backbone reads H), and its token tells the cameras apart (swapping them changes it)."""
    config = tiny_config(cameras=CAMERAS)
    assert SARMRewardModel(config).config.frame_tokens == DEFAULT_FRAME_TOKENS
    assert config.frame_tokens is None  # the caller's config is left as it was
    separate, fused = _model(frame_tokens="separate"), _model(frame_tokens="fused")
    hidden = fused.config.hidden_dim
    image = torch.randn(5, len(CAMERAS), FEATURE_DIM)
    text, state = torch.randn(5, FEATURE_DIM), torch.randn(5, 8)
    assert separate.stage_model.tokens(image, text, state).shape == (5, len(CAMERAS) + 2, hidden)
    tokens = fused.stage_model.tokens(image, text, state)
    assert tokens.shape == (5, 1, hidden)
    assert fused.stage_model.fusion_backbone[0].normalized_shape == (hidden,)
    swapped = fused.stage_model.tokens(image.flip(1), text, state)
    assert float((swapped - tokens).abs().max()) > 0.1
    with pytest.raises(RewardkitError, match="2 camera"):
        fused.stage_model.tokens(image[:, :1], text, state)


def test_frame_tokens_validation():
    with pytest.raises(RewardkitError, match="frame_tokens must be one of"):
        tiny_config(frame_tokens="pooled")
    with pytest.raises(RewardkitError, match="sliding architecture only"):
        tiny_config(frame_tokens="fused", architecture="lerobot")
    with pytest.raises(RewardkitError, match="sliding architecture only"):
        tiny_config(frame_tokens="fused", window="centred", n_obs_steps=4)
    lerobot = SARMRewardModel(tiny_config(architecture="lerobot"))
    assert lerobot.config.frame_tokens is None


def test_checkpoint_without_frame_tokens_keeps_the_separate_layout(tmp_path, monkeypatch):
    """A checkpoint saved before `frame_tokens` existed (no key in config.json) loads with the layout it
    was trained with, even when new models default to "fused"; a fused checkpoint loads fused."""
    import json

    import rewardkit
    from rewardkit.models.sarm import configuration_sarm

    features, text, state = _episode(12)
    for frame_tokens in ("separate", "fused"):
        model = _model(frame_tokens=frame_tokens)
        folder = tmp_path / frame_tokens
        model.save_pretrained(folder)
        saved = json.loads((folder / "config.json").read_text())
        assert saved["frame_tokens"] == frame_tokens
        if frame_tokens == "separate":  # as written before the field existed
            del saved["frame_tokens"]
            (folder / "config.json").write_text(json.dumps(saved))
        monkeypatch.setattr(configuration_sarm, "DEFAULT_FRAME_TOKENS", "fused")
        expected = model.label_episode(_inputs(features, text, state))
        for loaded in (rewardkit.load(folder), SARMRewardModel.from_pretrained(folder)):
            assert loaded.config.frame_tokens == frame_tokens
            labels = loaded.label_episode(_inputs(features, text, state))
            for key, value in expected.items():
                np.testing.assert_allclose(labels[key], value, atol=1e-6)
        monkeypatch.undo()


def test_fused_model_trains():
    """The fused layout's loss back-propagates to the camera projection and a few steps lower it."""
    from sarm_helpers import synthetic_data

    torch.manual_seed(0)
    config = tiny_config(frame_tokens="fused", cameras=CAMERAS)
    model = SARMRewardModel(config).train()
    data = synthetic_data(model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    batch = data.get_batch(rng.integers(0, len(data), 16), rng)
    losses = []
    for _ in range(30):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        assert float(model.subtask_model.visual_proj.weight.grad.abs().max()) > 0  # one stage: tau only
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
