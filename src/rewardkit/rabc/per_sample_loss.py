"""Per-sample losses for policies whose `forward` cannot return them, so any policy can be RA-BC weighted.

lerobot's training loop weights samples by calling `policy.forward(batch, reduction="none")` and expects
a (B,) loss. In lerobot 0.6.1 only pi0, pi0.5, SmolVLA (and a few others) accept `reduction`; ACT's and
Diffusion's `forward(batch)` take no such argument, so lerobot-train with `--sample_weighting.type=rabc`
stops at the first step with ``TypeError: forward() got an unexpected keyword argument 'reduction'``
(and, for Diffusion, earlier: its config has no `chunk_size`).

This module keeps a registry of per-sample loss functions keyed by policy type (`policy.config.type`)
and `enable_per_sample_loss(policy)` gives a policy a `forward(batch, reduction="mean"|"none")`:

- a policy whose own forward accepts `reduction` is left alone (it already works);
- a registered type gets its per-sample loss for `reduction="none"`, its own forward for "mean";
- anything else is an error naming the policy type and the supported ones.

The registry is keyed by the exact type name, not by class inheritance, so a subclass with extra
losses is never silently trained with its parent's loss. RewACT (type "rewact", an ACT subclass with a
reward loss) needs no entry: its own `forward(batch, reduction="none")` returns its per-sample loss, so it
is left alone. Registered here: "act", "diffusion".

Each per-sample loss reuses the policy's own network (ACT's `model`, Diffusion's U-Net and encoders)
and reduces the elementwise loss per sample instead of over the batch. ACT's is written once, beside
RewACT (`rewardkit.models.rewact.act_per_sample_loss`), which uses it for its own per-sample loss.
With equal weights, the weighted mean of the per-sample losses equals the policy's own loss when no
action is padded (padded steps are averaged per sample here, per batch in the policy).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from rewardkit.errors import RewardkitError
from rewardkit.models.rewact.modeling_rewact import act_per_sample_loss, masked_mean_per_sample

PerSampleLoss = Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, dict]]

_PER_SAMPLE_LOSSES: dict[str, PerSampleLoss] = {}


def register_per_sample_loss(policy_type: str) -> Callable[[PerSampleLoss], PerSampleLoss]:
    """Decorator registering `fn(policy, batch) -> (loss (B,), logs)` for policies of `policy_type`."""

    def decorate(fn: PerSampleLoss) -> PerSampleLoss:
        _PER_SAMPLE_LOSSES[policy_type] = fn
        return fn

    return decorate


def supported_policy_types() -> list[str]:
    """Policy types with a registered per-sample loss (policies with a native `reduction` also work)."""
    return sorted(_PER_SAMPLE_LOSSES)


def forward_accepts_reduction(policy: nn.Module) -> bool:
    """Whether `policy.forward` takes a `reduction` argument (lerobot's per-sample loss contract)."""
    try:
        return "reduction" in inspect.signature(policy.forward).parameters
    except (TypeError, ValueError):
        return False


def diffusion_per_sample_loss(policy: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """Diffusion Policy's denoising loss per sample (MSE to the noise or the clean actions).

    Args:
        policy: a lerobot `DiffusionPolicy` (uses its encoders, noise scheduler and U-Net).
        batch: Diffusion's training batch: "observation.state" (B, n_obs, S), images (B, n_obs, C, H, W)
            or (B, C, H, W), "action" (B, horizon, A), "action_is_pad" (B, horizon).

    Returns:
        (loss (B,), logs with the batch mean "mse_loss").
    """
    from lerobot.utils.constants import ACTION, OBS_IMAGES

    config = policy.config
    model = policy.diffusion
    if config.image_features:
        batch = dict(batch)
        for key in config.image_features:
            if config.n_obs_steps == 1 and batch[key].ndim == 4:
                batch[key] = batch[key].unsqueeze(1)
        batch[OBS_IMAGES] = torch.stack([batch[key] for key in config.image_features], dim=-4)
    actions = batch[ACTION]
    if actions.shape[1] != config.horizon:
        raise RewardkitError(
            f"diffusion batch has {actions.shape[1]} action steps, config.horizon={config.horizon}"
        )
    global_cond = model._prepare_global_conditioning(batch)  # (B, global_cond_dim)
    noise = torch.randn(actions.shape, device=actions.device)
    timesteps = torch.randint(
        0, model.noise_scheduler.config.num_train_timesteps, (actions.shape[0],), device=actions.device
    ).long()
    noisy = model.noise_scheduler.add_noise(actions, noise, timesteps)
    prediction = model.unet(noisy, timesteps, global_cond=global_cond)
    if config.prediction_type == "epsilon":
        target = noise
    elif config.prediction_type == "sample":
        target = actions
    else:
        raise RewardkitError(f"unsupported diffusion prediction_type {config.prediction_type!r}")
    is_pad = batch.get("action_is_pad") if config.do_mask_loss_for_padding else None
    if config.do_mask_loss_for_padding and is_pad is None:
        raise RewardkitError("diffusion with do_mask_loss_for_padding needs 'action_is_pad' in the batch")
    loss = masked_mean_per_sample(F.mse_loss(prediction, target, reduction="none"), is_pad)
    return loss, {"mse_loss": loss.mean().item()}


register_per_sample_loss("act")(act_per_sample_loss)
register_per_sample_loss("diffusion")(diffusion_per_sample_loss)


def enable_per_sample_loss(policy: nn.Module) -> nn.Module:
    """Make `policy.forward(batch, reduction="none")` return a (B,) loss; returns the same policy.

    A policy whose forward already takes `reduction` is returned unchanged. Otherwise the per-sample loss
    registered for `policy.config.type` is installed on this instance (the class is not touched):
    `reduction="mean"` still runs the policy's own forward, so evaluation and checkpoints are unaffected.

    Raises:
        ValueError: when the policy's type has neither a native `reduction` nor a registered loss.
    """
    if forward_accepts_reduction(policy):
        return policy
    policy_type = getattr(getattr(policy, "config", None), "type", None)
    per_sample = _PER_SAMPLE_LOSSES.get(policy_type)
    if per_sample is None:
        raise RewardkitError(
            f"policy type {policy_type!r} cannot be sample-weighted: its forward() has no `reduction` "
            f"argument and no per-sample loss is registered for it (registered: {supported_policy_types()}; "
            "policies whose forward accepts reduction='none' also work). Register one with "
            "rewardkit.rabc.register_per_sample_loss."
        )
    own_forward = policy.forward

    def forward(self: nn.Module, batch: dict[str, Tensor], reduction: str = "mean") -> tuple[Tensor, dict]:
        if reduction == "mean":
            return own_forward(batch)
        if reduction == "none":
            return per_sample(self, batch)
        raise RewardkitError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    policy.forward = types.MethodType(forward, policy)
    return policy


def weighted_mean(per_sample_loss: Tensor, weights: Tensor, epsilon: float = 1e-6) -> Tensor:
    """Σ w_i l_i / (Σ w_i + ε) of per-sample losses (B,) and weights (B,): lerobot's weighted loss.

    Dividing by the weight sum (not B) keeps the gradient scale when some weights are 0; a batch whose
    weights are all 0 gives loss 0 and no gradient.
    """
    weights = weights.to(per_sample_loss.dtype)
    return (per_sample_loss * weights).sum() / (weights.sum() + epsilon)
