"""Per-sample losses: ACT and Diffusion weighted training, zero gradient for negative progress."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from rewardkit.rabc import RABCWeighter, enable_per_sample_loss, weighted_mean
from rewardkit.rabc.per_sample_loss import act_per_sample_loss

STATE_DIM, ACTION_DIM, IMAGE = 4, 3, "observation.images.front"


def _features():
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,)),
        IMAGE: PolicyFeature(FeatureType.VISUAL, (3, 32, 32)),
    }
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


# ACT dimensions small enough for a 2-core test run; shared by the ACT and RewACT policies below.
TINY_ACT = dict(
    device="cpu",
    chunk_size=4,
    n_action_steps=4,
    dim_model=32,
    n_heads=2,
    dim_feedforward=64,
    n_encoder_layers=1,
    n_decoder_layers=1,
    n_vae_encoder_layers=1,
    latent_dim=8,
)


def tiny_act(use_vae: bool = True, dropout: float = 0.1):
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    inputs, outputs = _features()
    config = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        **TINY_ACT,
        use_vae=use_vae,
        dropout=dropout,
        pretrained_backbone_weights=None,
    )
    torch.manual_seed(0)
    return ACTPolicy(config)


def act_batch(batch_size: int, seed: int = 0, chunk: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": torch.randn(batch_size, STATE_DIM, generator=g),
        IMAGE: torch.rand(batch_size, 3, 32, 32, generator=g),
        "action": torch.randn(batch_size, chunk, ACTION_DIM, generator=g),
        "action_is_pad": torch.zeros(batch_size, chunk, dtype=torch.bool),
        "index": torch.arange(batch_size),
    }


def _grads(policy: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


def _weighted_step_grads(policy, batch, weights) -> dict[str, torch.Tensor]:
    policy.zero_grad()
    loss, _ = policy.forward(batch, reduction="none")
    weighted_mean(loss, weights).backward()
    return _grads(policy)


def test_act_per_sample_loss_reproduces_act_loss_with_equal_weights():
    policy = enable_per_sample_loss(tiny_act())
    policy.train()
    batch = act_batch(3)
    torch.manual_seed(1)
    own, own_logs = policy.forward(batch)
    torch.manual_seed(1)
    per_sample, logs = policy.forward(batch, reduction="none")
    assert per_sample.shape == (3,)
    assert weighted_mean(per_sample, torch.ones(3)).item() == pytest.approx(own.item(), rel=1e-4)
    assert logs["kld_loss"] == pytest.approx(own_logs["kld_loss"], rel=1e-4)
    # Padded steps do not count: changing a padded action leaves that sample's loss unchanged.
    batch["action_is_pad"][0, 2:] = True
    torch.manual_seed(1)
    padded, _ = policy.forward(batch, reduction="none")
    batch["action"][0, 2:] += 100.0
    torch.manual_seed(1)
    changed, _ = policy.forward(batch, reduction="none")
    torch.testing.assert_close(padded, changed)


def test_negative_progress_sample_contributes_zero_gradient(tmp_path):
    # Frame 2 goes backwards (progress falls over the chunk): RA-BC gives it weight 0.
    path = tmp_path / "progress.parquet"
    pd.DataFrame(
        {
            "index": np.arange(6),
            "episode_index": np.zeros(6, int),
            "frame_index": np.arange(6),
            "progress_sparse": [0.0, 0.2, 0.6, 0.3, 0.2, 0.4],
        }
    ).to_parquet(path)
    weighter = RABCWeighter.from_file(path, chunk_size=1, kappa=0.05)
    batch = act_batch(3)
    batch["index"] = torch.tensor([0, 1, 2])
    weights, _ = weighter.compute_batch_weights(batch)
    assert weights.tolist() == [1.0, 1.0, 0.0]

    policy = enable_per_sample_loss(tiny_act(use_vae=False, dropout=0.0))
    policy.train()
    with_sample = _weighted_step_grads(policy, batch, weights)
    without = {k: v[:2] for k, v in batch.items()}
    without_sample = _weighted_step_grads(policy, without, weights[:2])
    assert with_sample.keys() == without_sample.keys() and len(with_sample) > 10
    for name, grad in with_sample.items():
        torch.testing.assert_close(grad, without_sample[name], rtol=1e-4, atol=1e-6, msg=name)
    # The comparison can fail: with weight 1 the third sample does change the gradient.
    full = _weighted_step_grads(policy, batch, torch.ones(3))
    assert any(not torch.allclose(full[n], without_sample[n], rtol=1e-3, atol=1e-6) for n in full)


def test_zero_weight_sample_is_ignored_with_the_vae_on():
    # Same batch shape (so the VAE's random draws match), the zero-weight sample's content scrambled.
    policy = enable_per_sample_loss(tiny_act(use_vae=True))
    policy.train()
    weights = torch.tensor([1.0, 0.0, 0.5])
    batch = act_batch(3)
    torch.manual_seed(3)
    reference = _weighted_step_grads(policy, batch, weights)
    scrambled = {k: v.clone() for k, v in batch.items()}
    scrambled["action"][1] = torch.randn(4, ACTION_DIM) * 10
    scrambled["observation.state"][1] = -5.0
    scrambled[IMAGE][1] = 1.0 - scrambled[IMAGE][1]
    torch.manual_seed(3)
    after = _weighted_step_grads(policy, scrambled, weights)
    for name, grad in reference.items():
        torch.testing.assert_close(grad, after[name], rtol=1e-4, atol=1e-6, msg=name)


def _tiny_diffusion():
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    inputs, outputs = _features()
    config = DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        n_obs_steps=1,
        horizon=8,
        n_action_steps=4,
        down_dims=(16, 32),
        kernel_size=3,
        n_groups=4,
        diffusion_step_embed_dim=16,
        crop_shape=None,
        pretrained_backbone_weights=None,
        use_group_norm=True,
        num_train_timesteps=10,
    )
    torch.manual_seed(0)
    return DiffusionPolicy(config)


def _lerobot_update(policy, batch, weighter, steps: int = 2) -> list[float]:
    """lerobot's own update_policy (the training loop's step) with our weighter."""
    from accelerate import Accelerator
    from lerobot.scripts.lerobot_train import update_policy
    from lerobot.utils.logging_utils import AverageMeter, MetricsTracker

    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    metrics = {
        "loss": AverageMeter("loss"),
        "grad_norm": AverageMeter("g"),
        "lr": AverageMeter("lr"),
        "update_s": AverageMeter("u"),
    }
    tracker = MetricsTracker(len(batch["index"]), 100, 3, metrics)
    losses = []
    for _ in range(steps):
        tracker, output = update_policy(
            tracker, policy, batch, optimizer, 10.0, accelerator, sample_weighter=weighter
        )
        losses.append(tracker.loss.val)
        assert "sample_weight_mean_weight" in output
    return losses


class _FixedWeights:
    """A SampleWeighter-shaped stub returning given weights."""

    def __init__(self, weights):
        self.weights = torch.as_tensor(weights, dtype=torch.float32)

    def compute_batch_weights(self, batch):
        return self.weights, {"mean_weight": float(self.weights.mean())}

    def get_stats(self):
        return {}


def test_weighted_act_and_diffusion_train_through_lerobot_update_policy():
    act = enable_per_sample_loss(tiny_act())
    losses = _lerobot_update(act, act_batch(3), _FixedWeights([1.0, 0.3, 0.0]))
    assert all(np.isfinite(losses))

    diffusion = enable_per_sample_loss(_tiny_diffusion())
    batch = act_batch(3, chunk=8)
    batch["observation.state"] = batch["observation.state"][:, None]
    batch[IMAGE] = batch[IMAGE][:, None]
    per_sample, logs = diffusion.forward(batch, reduction="none")
    assert per_sample.shape == (3,) and per_sample.min() >= 0 and "mse_loss" in logs
    before = [p.detach().clone() for p in diffusion.parameters()]
    losses = _lerobot_update(diffusion, batch, _FixedWeights([1.0, 0.0, 0.5]))
    assert all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, diffusion.parameters(), strict=True))
    # The policy's own mean loss still works (evaluation path).
    loss, _ = diffusion.forward(batch)
    assert loss.ndim == 0


def test_unsupported_policy_is_named_and_native_reduction_is_left_alone():
    class Native(nn.Module):
        def forward(self, batch, reduction="mean"):
            return batch["x"], {}

    native = Native()
    assert enable_per_sample_loss(native).forward.__func__ is Native.forward

    class Unknown(nn.Module):
        class config:  # noqa: N801
            type = "mystery"

        def forward(self, batch):
            return batch["x"].mean(), {}

    with pytest.raises(ValueError, match="'mystery'"):
        enable_per_sample_loss(Unknown())


def test_make_sample_weighter_builds_ours_and_adapts_the_policy(tmp_path):
    from lerobot.utils.sample_weighting import SampleWeightingConfig

    from rewardkit.rabc import UniformWeighter, make_sample_weighter

    path = tmp_path / "sarm_progress.parquet"
    pd.DataFrame(
        {"index": np.arange(10), "episode_index": np.zeros(10, int), "progress_sparse": np.linspace(0, 1, 10)}
    ).to_parquet(path)
    policy = tiny_act()
    assert "reduction" not in str(type(policy).forward.__code__.co_varnames)
    weighter = make_sample_weighter(SampleWeightingConfig(type="rabc"), policy, "cpu", dataset_root=tmp_path)
    assert isinstance(weighter, RABCWeighter) and weighter.chunk_size == policy.config.chunk_size
    loss, _ = policy.forward(act_batch(2), reduction="none")
    assert loss.shape == (2,)
    custom = SampleWeightingConfig(
        type="rabc", progress_path=str(path), extra_params={"chunk_size": 3, "nan_weight": 0.0}
    )
    assert make_sample_weighter(custom, tiny_act(), "cpu").chunk_size == 3
    assert isinstance(
        make_sample_weighter(SampleWeightingConfig(type="uniform"), tiny_act(), "cpu"), UniformWeighter
    )
    with pytest.raises(ValueError, match="unknown sample_weighting.type"):
        make_sample_weighter(SampleWeightingConfig(type="curriculum"), tiny_act(), "cpu")
    with pytest.raises(ValueError, match="extra_params"):
        make_sample_weighter(SampleWeightingConfig(extra_params={"kapa": 1}), tiny_act(), "cpu")


def tiny_rewact(reward_head: str = "scalar", use_vae: bool = True):
    from rewardkit.models.rewact import RewACTConfig, RewACTPolicy

    inputs, outputs = _features()
    config = RewACTConfig(
        input_features=inputs,
        output_features=outputs,
        **TINY_ACT,
        use_vae=use_vae,
        pretrained_backbone_weights=None,
        reward_head=reward_head,
        reward_num_bins=11,
        reward_loss_weight=2.0,
    )
    torch.manual_seed(0)
    policy = RewACTPolicy(config)
    policy.set_progress_targets(np.linspace(0.0, 1.0, 8, dtype=np.float32))
    return policy


@pytest.mark.parametrize("reward_head", ["scalar", "distributional"])
def test_rewact_per_sample_loss_includes_the_reward_loss(reward_head):
    from rewardkit.models.rewact import RewACTPolicy

    policy = enable_per_sample_loss(tiny_rewact(reward_head))
    # RewACT's own forward takes `reduction`: its loss is written once, nothing is patched in.
    assert policy.forward.__func__ is RewACTPolicy.forward
    policy.train()
    batch = act_batch(3)
    batch["index"] = torch.tensor([1, 4, 7])
    torch.manual_seed(1)
    own, own_logs = policy.forward(batch)
    torch.manual_seed(1)
    per_sample, logs = policy.forward(batch, reduction="none")
    assert per_sample.shape == (3,)
    assert weighted_mean(per_sample, torch.ones(3)).item() == pytest.approx(own.item(), rel=1e-4)
    assert logs["reward_loss"] == pytest.approx(own_logs["reward_loss"], rel=1e-4)
    # Without the reward term the per-sample loss would be ACT's alone: the reward term is really there.
    torch.manual_seed(1)
    act_only, _ = act_per_sample_loss(policy, batch)
    assert not torch.allclose(act_only, per_sample)


def test_weighted_rewact_trains_two_steps_and_ignores_zero_weight_samples():
    policy = enable_per_sample_loss(tiny_rewact("distributional"))
    batch = act_batch(3)
    batch["index"] = torch.tensor([0, 3, 6])
    weights = torch.tensor([1.0, 0.0, 0.4])
    torch.manual_seed(5)
    reference = _weighted_step_grads(policy, batch, weights)
    scrambled = {k: v.clone() for k, v in batch.items()}
    scrambled["action"][1] *= -7.0
    scrambled["index"][1] = 7  # another reward target too
    torch.manual_seed(5)
    after = _weighted_step_grads(policy, scrambled, weights)
    assert any(name.startswith("reward_head") for name in reference)
    for name, grad in reference.items():
        torch.testing.assert_close(grad, after[name], rtol=1e-4, atol=1e-6, msg=name)
    losses = _lerobot_update(policy, batch, _FixedWeights(weights))
    assert all(np.isfinite(losses))
