"""The monitor refuses what a model cannot use (issue 13.6): non-finite or wrongly sized state, float
images outside [0, 1]; with on_invalid="skip" a bad step leaves the model's history untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.data.dataset import open_dataset
from rewardkit.online import InvalidObservation, RewardMonitor
from rewardkit.online.adapters import frame_to_uint8_hwc

CAMERA = "observation.images.top"


@pytest.fixture(scope="module")
def sarm_and_episode(tiny_dataset):
    from rewardkit.encoders import make_encoder
    from rewardkit.models.sarm import SARMConfig, SARMRewardModel

    root, _ = tiny_dataset
    dataset = open_dataset(root=root)
    state = dataset.read_columns(1, ["observation.state"])["observation.state"]
    encoder = make_encoder("clip-random:tiny")
    dim = encoder.feature_dim
    torch.manual_seed(0)
    config = SARMConfig(
        hidden_dim=32, num_layers=2, num_heads=4, n_obs_steps=3, frame_gap=2, max_rewind_steps=2, image_dim=dim,
        text_dim=dim, max_state_dim=8, dropout=0.0, cameras=[CAMERA], encoder="clip-random:tiny", device="cpu",
        state_mean=[0.0] * state.shape[1], state_std=[1.0] * state.shape[1],
    )  # fmt: skip
    model = SARMRewardModel(config).eval()
    frames = dataset.read_frames(1, CAMERA)
    observations = [
        {CAMERA: frames[t], "observation.state": state[t], "task": dataset.episode(1).task}
        for t in range(len(frames))
    ]
    return model, encoder, observations


def test_nan_state_on_the_first_step_is_refused_by_default(sarm_and_episode):
    model, encoder, observations = sarm_and_episode
    monitor = RewardMonitor(model, fps=10, encoder=encoder)
    bad = dict(
        observations[0], **{"observation.state": np.full_like(observations[0]["observation.state"], np.nan)}
    )
    with pytest.raises(InvalidObservation, match="non-finite"):
        monitor.step(bad)
    # the refused step left no trace: the episode then runs as if it had never been offered
    clean = RewardMonitor(model, fps=10, encoder=encoder)
    got = [monitor.step(o).progress for o in observations[:5]]
    want = [clean.step(o).progress for o in observations[:5]]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.isfinite(got).all()


def test_skip_mode_keeps_the_history_clean_and_counts(sarm_and_episode):
    model, encoder, observations = sarm_and_episode
    clean = RewardMonitor(model, fps=10, encoder=encoder)
    want = [clean.step(o).progress for o in observations]
    monitor = RewardMonitor(model, fps=10, encoder=encoder, on_invalid="skip")
    got = []
    for t, observation in enumerate(observations):
        if t == 3:  # a transient glitch between two good frames
            glitch = dict(observation, **{"observation.state": observation["observation.state"] * np.nan})
            out = monitor.step(glitch)
            assert out.skipped and out.progress == got[-1] and not out.completed
        got.append(monitor.step(observation).progress)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert monitor.skipped_steps == 1


def test_state_of_the_wrong_size_is_refused(sarm_and_episode):
    model, encoder, observations = sarm_and_episode
    monitor = RewardMonitor(model, fps=10, encoder=encoder)
    short = dict(observations[0], **{"observation.state": observations[0]["observation.state"][:-1]})
    with pytest.raises(InvalidObservation, match="trained on a"):
        monitor.step(short)


def test_float_image_in_0_255_is_refused_not_clipped_to_white():
    frame = np.random.default_rng(0).uniform(0, 255, size=(8, 8, 3)).astype(np.float32)
    with pytest.raises(InvalidObservation, match=r"\[0, 1\]"):
        frame_to_uint8_hwc(frame, CAMERA)
    np.testing.assert_array_equal(frame_to_uint8_hwc(frame / 255.0, CAMERA), np.round(frame).astype(np.uint8))
    with pytest.raises(InvalidObservation, match="non-finite"):
        frame_to_uint8_hwc(np.full((8, 8, 3), np.nan, np.float32), CAMERA)


def test_on_invalid_must_be_raise_or_skip(sarm_and_episode):
    model, encoder, _ = sarm_and_episode
    with pytest.raises(ValueError, match="on_invalid"):
        RewardMonitor(model, encoder=encoder, on_invalid="ignore")
