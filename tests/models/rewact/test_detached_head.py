"""The detached reward head (`reward_head_detach`, the default) costs the policy nothing: ACT's network gets
exactly plain ACT's gradients and, through lerobot-train's step (AdamW on `get_optim_params`, gradient-norm
clip over all parameters), takes exactly plain ACT's steps, while the head still learns (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rewact_helpers import make_policy_and_processors

from rewardkit.models.rewact.modeling_rewact import DETACHED_HEAD_GRAD_SCALE

# Small enough that lerobot-train's clip (10 in its optimiser presets) is active on the tiny model's steps,
# which is the case measured on the bundled dataset (most early steps are clipped).
CLIP = 0.5


def _policy(meta, seed: int = 0, **overrides):
    torch.manual_seed(seed)  # the same initial weights for every policy compared
    return make_policy_and_processors(meta, use_vae=False, **overrides)


def _frames(rewact_data, preprocessor) -> dict[str, torch.Tensor]:
    _, _, raw = rewact_data
    normalised = preprocessor({k: v for k, v in raw.items() if isinstance(v, torch.Tensor)})
    return {k: v for k, v in normalised.items() if isinstance(v, torch.Tensor) and v.ndim > 0}


def _trunk(policy) -> dict[str, torch.Tensor]:
    return {n: p for n, p in policy.named_parameters() if not n.startswith("reward_head.")}


def _backward(policy, batch, seed: int) -> None:
    policy.train()
    torch.manual_seed(seed)  # ACT's dropout masks: the same draws in every policy compared
    loss, _ = policy.forward(batch)
    policy.zero_grad()
    loss.backward()


@pytest.mark.parametrize("detach", [True, False])
def test_the_reward_loss_leaves_act_gradients_those_of_plain_act_when_detached(rewact_data, detach):
    _, meta, _ = rewact_data
    rewact, preprocessor, _ = _policy(meta, reward_head_detach=detach, reward_loss_weight=5.0)
    plain, _, _ = _policy(meta, reward_loss_weight=0.0)
    batch = {k: v[::3] for k, v in _frames(rewact_data, preprocessor).items()}
    _backward(rewact, batch, seed=1)
    _backward(plain, batch, seed=1)
    differs = [
        name
        for name, parameter in _trunk(rewact).items()
        if not torch.equal(parameter.grad, _trunk(plain)[name].grad)
    ]
    if detach:
        assert differs == []
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rewact.reward_head.parameters())
    else:
        # The comparison can fail: the attached head's loss does reach the decoder, encoder and backbone.
        assert any(name.startswith("model.decoder") for name in differs)


def _lerobot_steps(policy, frames, rows_per_step, zero_head_grads: bool) -> list[float]:
    """lerobot-train's update: forward, backward, clip over all parameters, AdamW on get_optim_params."""
    optimizer = torch.optim.AdamW(policy.get_optim_params(), lr=1e-3)
    norms = []
    for step, rows in enumerate(rows_per_step):
        _backward(policy, {k: v[rows] for k, v in frames.items()}, seed=step)
        if zero_head_grads:
            # Plain ACT's head gets no gradient; zeros make the clip sum the same tensors in the same order.
            for parameter in policy.reward_head.parameters():
                parameter.grad = torch.zeros_like(parameter)
        norms.append(float(torch.nn.utils.clip_grad_norm_(policy.parameters(), CLIP)))
        optimizer.step()
    return norms


def test_clipped_lerobot_steps_of_the_detached_rewact_equal_plain_acts_and_the_head_learns(rewact_data):
    _, meta, _ = rewact_data
    rewact, preprocessor, _ = _policy(meta, reward_loss_weight=1.0)
    plain, _, _ = _policy(meta, reward_loss_weight=0.0)
    assert rewact.config.reward_head_detach  # the default
    frames = _frames(rewact_data, preprocessor)
    rng = np.random.default_rng(0)
    rows_per_step = [torch.as_tensor(rng.choice(len(frames["index"]), 8, replace=False)) for _ in range(6)]
    head_before = [p.detach().clone() for p in rewact.reward_head.parameters()]
    norms = _lerobot_steps(rewact, frames, rows_per_step, zero_head_grads=False)
    plain_norms = _lerobot_steps(plain, frames, rows_per_step, zero_head_grads=True)
    assert min(norms) > CLIP  # the clip scaled every step, and by plain ACT's factor exactly
    assert norms == plain_norms
    for name, parameter in _trunk(rewact).items():
        assert torch.equal(parameter, _trunk(plain)[name]), name
    assert all(
        not torch.equal(a, b) for a, b in zip(head_before, rewact.reward_head.parameters(), strict=True)
    )


def test_the_head_gradient_scale_leaves_its_adamw_step_that_of_the_unscaled_gradient(rewact_data):
    """The head's gradient is scaled down (so the clip's norm does not see it) and its AdamW epsilon with
    it: its update equals AdamW's on the unscaled gradient at the usual epsilon."""
    _, meta, _ = rewact_data
    rewact, preprocessor, _ = _policy(meta, reward_loss_weight=1.0)
    batch = {k: v[::3] for k, v in _frames(rewact_data, preprocessor).items()}
    groups = rewact.get_optim_params()
    head_group = groups[-1]
    eps = rewact.config.get_optimizer_preset().eps
    assert head_group["eps"] == pytest.approx(eps * DETACHED_HEAD_GRAD_SCALE)
    initial = [p.detach().clone() for p in rewact.reward_head.parameters()]
    reference = [p.clone().requires_grad_(True) for p in initial]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    reference_optimizer = torch.optim.AdamW(reference, lr=head_group["lr"], eps=eps)
    for step in range(3):
        _backward(rewact, batch, seed=step)
        for ref, parameter in zip(reference, rewact.reward_head.parameters(), strict=True):
            ref.grad = parameter.grad / DETACHED_HEAD_GRAD_SCALE
        optimizer.step()
        reference_optimizer.step()
    for start, ref, parameter in zip(initial, reference, rewact.reward_head.parameters(), strict=True):
        assert not torch.equal(parameter, start)  # the head moved: the comparison means something
        torch.testing.assert_close(parameter, ref, rtol=1e-5, atol=1e-7)
