"""A lerobot SARM checkpoint opens with `rewardkit.load` and gives lerobot's outputs (centred window)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lerobot.rewards.sarm.configuration_sarm import SARMConfig as LerobotSARMConfig
from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel as LerobotSARMRewardModel
from lerobot.rewards.sarm.sarm_utils import compute_absolute_indices

import rewardkit
from rewardkit.models.base import EpisodeInputs
from rewardkit.models.sarm import SARMRewardModel

DIM = 16


@pytest.fixture(params=["single_stage", "dual"])
def lerobot_checkpoint(request, tmp_path):
    extra = {}
    if request.param == "dual":
        extra = dict(
            num_sparse_stages=2,
            sparse_subtask_names=["reach", "place"],
            sparse_temporal_proportions=[0.3, 0.7],
            num_dense_stages=3,
            dense_subtask_names=["a", "b", "c"],
            dense_temporal_proportions=[0.2, 0.5, 0.3],
        )
    config = LerobotSARMConfig(
        annotation_mode=request.param,
        hidden_dim=32,
        num_heads=4,
        num_layers=2,
        image_dim=DIM,
        text_dim=DIM,
        max_state_dim=8,
        n_obs_steps=4,
        frame_gap=3,
        max_rewind_steps=2,
        device="cpu",
        **extra,
    )
    torch.manual_seed(0)
    reference = LerobotSARMRewardModel(config)
    with torch.no_grad():  # lerobot initialises first_pos to zero: make it matter
        reference.stage_model.first_pos.normal_()
        reference.subtask_model.first_pos.normal_()
    reference.save_pretrained(tmp_path / "ckpt")
    return reference.eval(), tmp_path / "ckpt"


def test_lerobot_checkpoint_gives_lerobot_outputs(lerobot_checkpoint):
    reference, folder = lerobot_checkpoint
    ours = rewardkit.load(folder)
    assert isinstance(ours, SARMRewardModel) and ours.config.window == "centred"
    rng = np.random.default_rng(0)
    length, batch = 14, 6
    features = rng.normal(size=(length, DIM)).astype(np.float32)
    text = rng.normal(size=DIM).astype(np.float32)
    state = rng.normal(size=(length, 5)).astype(np.float32)
    schemes = ["sparse", "dense"] if reference.config.uses_dual_heads else ["sparse"]
    labels = ours.label_episode(
        EpisodeInputs(
            0,
            "t",
            length,
            10,
            state=state,
            text_features=text,
            image_features={ours.config.cameras[0]: features},
        )
    )
    centre = reference.config.n_obs_steps // 2
    for t in range(length):
        # lerobot's inference input: the centred window, then rewind placeholders masked by `lengths`.
        idx, _ = compute_absolute_indices(
            t, 0, length, reference.config.n_obs_steps, reference.config.frame_gap
        )
        idx = np.concatenate([idx.numpy(), [0] * reference.config.max_rewind_steps])
        video = torch.from_numpy(features[idx])[None]
        video[:, -reference.config.max_rewind_steps :] = torch.randn(reference.config.max_rewind_steps, DIM)
        lengths = torch.tensor([reference.config.n_obs_steps + 1])
        for scheme in schemes:
            expected = reference.calculate_rewards(
                torch.from_numpy(text)[None],
                video,
                torch.from_numpy(state[idx])[None],
                lengths,
                return_all_frames=True,
                head_mode=scheme,
            )
            key = "progress" if scheme == "sparse" else "progress_dense"
            assert abs(labels[key][t] - expected[0, centre]) < 1e-4, (scheme, t)
    # predict_scheme on a batch of windows == lerobot on the same batch, every window position.
    idx = rng.integers(0, length, size=(batch, reference.config.n_obs_steps + 1))
    inputs = {
        "image_features": torch.from_numpy(features[idx])[:, None],
        "text_features": torch.from_numpy(np.repeat(text[None], batch, 0)),
        "state": torch.from_numpy(state[idx]),
    }
    for scheme in schemes:
        expected, probs = reference.calculate_rewards(
            inputs["text_features"],
            inputs["image_features"][:, 0],
            inputs["state"],
            return_all_frames=True,
            return_stages=True,
            head_mode=scheme,
        )
        progress, our_probs = ours.predict_scheme(inputs, scheme)
        np.testing.assert_allclose(progress.numpy(), expected, atol=1e-4)
        np.testing.assert_allclose(our_probs.numpy(), probs, atol=1e-4)


def test_lerobot_checkpoint_normalises_state_with_the_labelled_datasets_stats(lerobot_checkpoint, tmp_path):
    """lerobot's labeller normalises state (MEAN_STD) with the dataset's meta/stats.json in its
    preprocessor; our labeller calls `prepare_for_dataset`, so raw state gives lerobot's outputs."""
    from types import SimpleNamespace

    reference, folder = lerobot_checkpoint
    ours = rewardkit.load(folder)
    rng = np.random.default_rng(1)
    length = 10
    features = rng.normal(size=(length, DIM)).astype(np.float32)
    text = rng.normal(size=DIM).astype(np.float32)
    mean, std = rng.normal(size=5).astype(np.float32), rng.uniform(0.5, 2.0, size=5).astype(np.float32)
    raw_state = (rng.normal(size=(length, 5)) * std + mean).astype(np.float32)
    dataset = SimpleNamespace(
        root=tmp_path, meta=SimpleNamespace(stats={"observation.state": {"mean": mean, "std": std}})
    )
    ours.prepare_for_dataset(dataset)
    inputs = EpisodeInputs(0, "t", length, 10, state=raw_state, text_features=text,
                           image_features={ours.config.cameras[0]: features})  # fmt: skip
    labels = ours.label_episode(inputs)["progress"]
    normalised = (raw_state - mean) / std
    centre, rewind = reference.config.n_obs_steps // 2, reference.config.max_rewind_steps
    for t in (0, length // 2, length - 1):
        idx, _ = compute_absolute_indices(
            t, 0, length, reference.config.n_obs_steps, reference.config.frame_gap
        )
        idx = np.concatenate([idx.numpy(), [0] * rewind])
        expected = reference.calculate_rewards(
            torch.from_numpy(text)[None], torch.from_numpy(features[idx])[None],
            torch.from_numpy(normalised[idx])[None], torch.tensor([reference.config.n_obs_steps + 1]),
            return_all_frames=True, head_mode="sparse",
        )  # fmt: skip
        assert abs(labels[t] - expected[0, centre]) < 1e-4, t
    # without the dataset's stats the checkpoint cannot be fed correctly: a clear error, not silent raw state
    fresh = rewardkit.load(folder)
    with pytest.raises(ValueError, match="no observation.state mean/std in meta/stats.json"):
        fresh.prepare_for_dataset(SimpleNamespace(root=tmp_path, meta=SimpleNamespace(stats={})))
