"""SARM model: masking, per-sample text, rewind labels, causal labelling, training per annotation mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sarm_helpers import FEATURE_DIM, synthetic_data, tiny_config

from rewardkit.models.base import EpisodeInputs
from rewardkit.models.sarm import SARMRewardModel
from rewardkit.training import Trainer, TrainingConfig


def _model(**overrides) -> SARMRewardModel:
    torch.manual_seed(0)
    return SARMRewardModel(tiny_config(**overrides))


def test_padded_positions_do_not_affect_loss():
    model = _model().eval()
    data = synthetic_data(model.config)
    batch = data.get_batch(np.arange(30, 38), np.random.default_rng(0))
    batch["lengths"] = torch.tensor([5, 6, 7, 5, 6, 7, 7, 5])
    loss, _ = model(batch)
    garbage = {k: v.clone() for k, v in batch.items()}
    padded = torch.arange(7)[None, :] >= batch["lengths"][:, None]  # (B, L)
    garbage["image_features"][padded[:, None, :].expand_as(garbage["image_features"][..., 0])] = 7.0
    garbage["state"][padded] = -3.0
    garbage["sparse_stage"][padded] = 0
    garbage["sparse_tau"][padded] = 0.9
    loss_garbage, _ = model(garbage)
    assert torch.allclose(loss, loss_garbage, atol=1e-6)
    # ... while a change at a valid position does change it (the test can fail).
    garbage["sparse_tau"][0, 0] += 0.5
    assert not torch.allclose(loss, model(garbage)[0])


def test_each_sample_uses_its_own_task_text():
    model = _model().eval()
    data = synthetic_data(model.config, num_tasks=2, augment=False)
    batch = data.get_batch(np.array([0, 25]))  # episode 0 (task 0) and episode 1 (task 1)
    assert torch.equal(batch["text_features"][0], torch.from_numpy(data.text_features[0]))
    assert torch.equal(batch["text_features"][1], torch.from_numpy(data.text_features[1]))
    window = {
        k: batch[k][:, :, :5] if k == "image_features" else batch[k][:, :5] if k == "state" else batch[k]
        for k in ("image_features", "text_features", "state")
    }
    before = model.predict_scheme(window)[0]
    window["text_features"] = window["text_features"].clone()
    window["text_features"][1] += 1.0
    after = model.predict_scheme(window)[0]
    assert torch.equal(before[0], after[0]) and not torch.allclose(before[1], after[1])


def test_rewind_frames_are_labelled_with_their_own_frame():
    config = tiny_config(rewind_probability=1.0, language_perturbation_probability=0.0)
    data = synthetic_data(config)
    stage, tau = data.targets["sparse"]
    batch = data.get_batch(np.arange(len(data)), np.random.default_rng(1))
    lengths = batch["lengths"].numpy()
    assert (lengths > 5).any()
    for i in np.nonzero(lengths > 5)[0]:
        episode = data._episode_of_sample[i]
        t = data._frame_of_sample[i]
        for r in range(lengths[i] - 5):
            frame = t - config.frame_gap * (r + 1)  # walking back from the scored (last) frame
            assert batch["sparse_tau"][i, 5 + r] == pytest.approx(tau[data._from[episode] + frame])
        assert (batch["sparse_tau"][i, lengths[i] :] == 0).all()


@pytest.mark.parametrize("architecture", ["sliding", "lerobot"])
def test_causal_label_episode_equals_per_window(architecture):
    model = _model(
        architecture=architecture,
        num_layers=2,
        annotation_mode="dual",
        num_dense_stages=3,
        dense_temporal_proportions=[0.2, 0.5, 0.3],
        dense_subtask_names=["a", "b", "c"],
        sparse_subtask_names=["x", "y"],
        sparse_temporal_proportions=[0.4, 0.6],
        label_batch_size=7,
    ).eval()
    rng = np.random.default_rng(0)
    length = 23
    features = rng.normal(size=(length, FEATURE_DIM)).astype(np.float16)
    text = rng.normal(size=FEATURE_DIM).astype(np.float32)
    state = rng.normal(size=(length, 3)).astype(np.float32)
    out = model.label_episode(
        EpisodeInputs(
            0,
            "task",
            length,
            10,
            state=state,
            image_features={"observation.images.top": features},
            text_features=text,
        )
    )
    assert out["progress"].shape == (length,) and out["stage_probs"].shape == (length, 2)
    assert out["progress_dense"].shape == (length,)
    for t in range(length):
        idx = np.clip(t + np.array(model.config.window_offsets), 0, length - 1)
        assert idx[-1] == t and (np.diff(idx) >= 0).all()  # history only
        batch = {
            "image_features": torch.from_numpy(features[idx].astype(np.float32))[None, None],
            "text_features": torch.from_numpy(text)[None],
            "state": torch.from_numpy(state[idx])[None],
        }
        assert abs(float(model.predict_progress(batch)[0]) - out["progress"][t]) < 1e-5
        dense, _ = model.predict_scheme(batch, "dense")
        assert abs(float(dense[0, -1]) - out["progress_dense"][t]) < 1e-5
    subset = model.label_episode(
        EpisodeInputs(
            0,
            "task",
            length,
            10,
            state=state,
            text_features=text,
            image_features={"observation.images.top": features},
            frame_indices=np.array([3, 10]),
        )
    )
    np.testing.assert_allclose(subset["progress"], out["progress"][[3, 10]], atol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"annotation_mode": "single_stage"},
        {
            "annotation_mode": "dense_only",
            "dense_subtask_names": ["a", "b", "c"],
            "dense_temporal_proportions": [0.3, 0.3, 0.4],
        },
        {
            "annotation_mode": "dual",
            "sparse_subtask_names": ["x", "y"],
            "sparse_temporal_proportions": [0.5, 0.5],
            "dense_subtask_names": ["a", "b", "c"],
            "dense_temporal_proportions": [0.3, 0.3, 0.4],
        },
    ],
    ids=lambda o: o["annotation_mode"],
)
def test_each_annotation_mode_trains_and_the_loss_falls(tmp_path, overrides):
    model = _model(**overrides)
    train = synthetic_data(model.config)
    val = synthetic_data(model.config, augment=False)
    config = TrainingConfig(
        steps=25,
        batch_size=12,
        lr=4e-3,
        warmup_steps=2,
        val_fraction=0,
        val_every=0,
        val_batches=0,
        save_every=0,
        log_every=1000,
        progress_bar=False,
        seed=3,
    )
    trainer = Trainer(model, train, config, tmp_path, val)
    before = trainer.evaluate()["val_loss"]
    result = trainer.train()
    assert result.val_logs["val_loss"] < 0.7 * before
    assert set(result.train_logs) >= {"sparse_stage_loss", "sparse_tau_loss", "progress_mae"}
    if model.config.uses_dual_heads:
        assert "dense_tau_loss" in result.train_logs


def test_multi_camera_model_reads_every_camera():
    cams = ["observation.images.top", "observation.images.wrist"]
    model = _model(cameras=cams).eval()
    data = synthetic_data(model.config, augment=False)
    batch = data.get_batch(np.arange(4))
    assert batch["image_features"].shape[1] == 2
    loss, _ = model(batch)
    batch["image_features"][:, 1] += 1.0
    assert not torch.allclose(loss, model(batch)[0])


def test_state_dropout_blanks_whole_windows_in_training_only():
    from rewardkit.errors import RewardkitError

    model = SARMRewardModel(tiny_config(state_dropout=0.5, state_mean=[0.0] * 3, state_std=[1.0] * 3))
    state = torch.randn(256, 5, 3) + 3.0  # never zero
    torch.manual_seed(0)
    model.train()
    prepared = model._prepare_state(state, 256, 5, torch.device("cpu"))[..., :3]
    blank = (prepared == 0).all(dim=(1, 2))
    assert ((prepared != 0).all(dim=(1, 2)) | blank).all()  # a window keeps all its state or none of it
    assert 0.35 < blank.float().mean() < 0.65
    model.eval()  # labelling always reads the state
    assert (model._prepare_state(state, 256, 5, torch.device("cpu"))[..., :3] != 0).all()
    plain = SARMRewardModel(tiny_config(state_mean=[0.0] * 3, state_std=[1.0] * 3)).train()
    assert (plain._prepare_state(state, 256, 5, torch.device("cpu"))[..., :3] != 0).all()
    with pytest.raises(RewardkitError, match="state_dropout must be in"):
        tiny_config(state_dropout=1.0)
