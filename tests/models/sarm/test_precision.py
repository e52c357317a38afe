"""bf16 for SARM: training on a bfloat16 copy of the weights (float32 master weights), the online step on
bf16 weights, and the CPU flags the benchmarks use to decide whether bf16 targets apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sarm_helpers import synthetic_data, tiny_config

from rewardkit.errors import RewardkitError
from rewardkit.models.sarm import SARMRewardModel
from rewardkit.precision import cpu_bf16_flags, low_precision_copy
from rewardkit.training import Trainer, TrainingConfig


def _trained(tmp_path, precision: str, steps: int = 25) -> tuple[Trainer, float]:
    """The tiny SARM trained `steps` steps from the same weights and data order; (trainer, val loss
    before training)."""
    torch.manual_seed(0)
    model = SARMRewardModel(tiny_config(num_layers=2))
    training = TrainingConfig(
        steps=steps, batch_size=12, lr=4e-3, warmup_steps=2, mixed_precision=precision, val_batches=0,
        progress_bar=False, save_every=0, val_every=0, seed=3,
    )  # fmt: skip
    train, val = synthetic_data(model.config), synthetic_data(model.config, augment=False)
    trainer = Trainer(model, train, training, tmp_path / precision, val)
    start = trainer.evaluate()["val_loss"]
    torch.manual_seed(0)
    for step in range(steps):
        trainer.train_step(trainer.next_batch(step))
    return trainer, start


def test_bf16_weights_training_tracks_fp32(tmp_path):
    fp32, start = _trained(tmp_path, "no")
    bf16, start_bf16 = _trained(tmp_path, "bf16-weights")
    assert start_bf16 == start  # same initial weights and data
    fp32_loss, bf16_loss = fp32.evaluate()["val_loss"], bf16.evaluate()["val_loss"]
    assert fp32_loss < 0.7 * start  # it learned: the comparison is not between two untrained models
    assert abs(bf16_loss - fp32_loss) <= 0.02 * fp32_loss  # the bound
    # the master weights stay float32 (what the optimizer updates and checkpoints save); the copy is bf16
    master = dict(bf16.model.named_parameters())
    low = dict(bf16._low.named_parameters())
    assert {p.dtype for p in master.values()} == {torch.float32}
    assert {p.dtype for p in low.values()} == {torch.bfloat16}
    assert bf16._low._state_std.dtype == torch.float32  # buffers keep their dtype
    weight = "subtask_model.layers.0.linear1.weight"  # (one stage here: the stage model learns nothing)
    assert not torch.equal(master[weight], fp32.model.state_dict()[weight])  # trained differently...
    torch.testing.assert_close(master[weight], fp32.model.state_dict()[weight], atol=5e-2, rtol=0)


def test_unknown_precision_is_refused(tmp_path):
    model = SARMRewardModel(tiny_config())
    training = TrainingConfig(steps=1, batch_size=2, mixed_precision="bf32", progress_bar=False)
    with pytest.raises(RewardkitError, match="mixed_precision must be one of"):
        Trainer(model, synthetic_data(model.config), training, tmp_path)


@torch.no_grad()
def test_online_step_on_bf16_weights_is_close_to_fp32():
    torch.manual_seed(0)
    model = SARMRewardModel(tiny_config(num_layers=2)).eval()
    rng = np.random.default_rng(0)
    fp32, bf16 = model.online_stream(), model.online_stream(torch.bfloat16)
    assert bf16.model is not model and bf16.model.compute_dtype == torch.bfloat16
    assert model.compute_dtype == torch.float32  # the model itself is unchanged
    for _ in range(12):
        image = torch.from_numpy(rng.normal(size=(1, 16)).astype(np.float32))
        text = torch.from_numpy(rng.normal(size=16).astype(np.float32))
        state = torch.from_numpy(rng.normal(size=2).astype(np.float32))
        exact, low = fp32.step(image, text, state), bf16.step(image, text, state)
        assert abs(low["sparse"][0] - exact["sparse"][0]) < 0.02


def test_cpu_bf16_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx512f amx_bf16 amx_tile avx512_bf16\n")
    assert cpu_bf16_flags(info) == ["amx_bf16", "avx512_bf16"]
    info.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
    assert cpu_bf16_flags(info) == []
    assert cpu_bf16_flags(tmp_path / "missing") == []


def test_low_precision_copy_keeps_the_original():
    module = torch.nn.Linear(3, 2)
    module.register_buffer("stats", torch.ones(2))
    low = low_precision_copy(module)
    assert low.weight.dtype == torch.bfloat16 and low.stats.dtype == torch.float32
    assert module.weight.dtype == torch.float32


@pytest.mark.parametrize("architecture", ["sliding", "lerobot"])
def test_labelling_on_bf16_weights_is_close_to_fp32(architecture):
    """label_episode on a bf16 copy of the weights (no autocast: the inputs take the weights' dtype) labels
    every frame within bf16's precision of float32, and hands back float32 arrays."""
    from dataclasses import replace

    from rewardkit.models.base import EpisodeInputs

    torch.manual_seed(0)
    config = tiny_config(num_layers=2)
    if architecture == "lerobot":
        config = replace(config, architecture="lerobot", temporal_bands=None)
    model = SARMRewardModel(config).eval()
    rng = np.random.default_rng(0)
    length = 40
    inputs = EpisodeInputs(
        episode_index=0, task="t", length=length, fps=10,
        state=rng.normal(size=(length, 2)).astype(np.float32),
        image_features={cam: rng.normal(size=(length, 16)).astype(np.float32) for cam in config.cameras},
        text_features=rng.normal(size=16).astype(np.float32),
    )  # fmt: skip
    exact = model.label_episode(inputs)
    low = low_precision_copy(model).eval().label_episode(inputs)
    assert low["progress"].dtype == np.float32 and low["stage_probs"].dtype == np.float32
    assert not np.array_equal(low["progress"], exact["progress"])  # it ran in bf16...
    np.testing.assert_allclose(low["progress"], exact["progress"], atol=0.02)  # ...within bf16's precision
    np.testing.assert_allclose(low["stage_probs"], exact["stage_probs"], atol=0.03)


def test_labeller_runs_sarm_on_a_bf16_copy_of_its_weights_not_autocast(monkeypatch, tiny_dataset):
    """`label_dataset(dtype=bf16)` gives SARM a bf16 copy of its weights (the caller's model keeps float32)
    and its labels stay within bf16 precision of float32."""
    import numpy as np
    import torch

    from rewardkit.data.dataset import open_dataset
    from rewardkit.encoders import make_encoder
    from rewardkit.labelling import label_dataset
    from rewardkit.models.sarm import SARMConfig, SARMRewardModel

    encoder = make_encoder("clip-random:tiny")
    torch.manual_seed(0)
    config = SARMConfig(
        hidden_dim=32, num_layers=2, num_heads=4, n_obs_steps=3, frame_gap=2, max_rewind_steps=2,
        image_dim=encoder.feature_dim, text_dim=encoder.feature_dim, max_state_dim=8, dropout=0.0,
        cameras=["observation.images.top"], encoder="clip-random:tiny", device="cpu",
    )  # fmt: skip
    model = SARMRewardModel(config).eval()
    dataset = open_dataset(root=tiny_dataset[0])
    calls = []
    real_autocast = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: calls.append(a) or real_autocast(*a, **k))
    full = label_dataset(model, dataset, show_progress=False, encoder=encoder)
    low = label_dataset(model, dataset, show_progress=False, dtype=torch.bfloat16, encoder=encoder)
    assert calls == []  # no autocast: the weights themselves are bf16
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    for a, b in zip(full, low, strict=True):
        np.testing.assert_allclose(a.outputs["progress"], b.outputs["progress"], atol=0.03)
