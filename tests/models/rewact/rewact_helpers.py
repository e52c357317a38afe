"""Helpers of the RewACT tests: a tiny config and a policy built the way lerobot-train builds it."""

from __future__ import annotations

TINY = dict(
    dim_model=32,
    n_heads=2,
    dim_feedforward=64,
    n_encoder_layers=1,
    n_vae_encoder_layers=1,
    latent_dim=4,
    chunk_size=5,
    n_action_steps=5,
    pretrained_backbone_weights=None,
    device="cpu",
)


def tiny_config(**overrides):
    """A RewACT config small enough to train in seconds on CPU."""
    from rewardkit.models.rewact import RewACTConfig

    return RewACTConfig(**{**TINY, **overrides})


def make_policy_and_processors(meta, **overrides):
    """A fresh tiny RewACT built the way lerobot-train builds it, with its pre/post processors."""
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    config = tiny_config(**overrides)
    policy = make_policy(config, ds_meta=meta)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=meta.stats)
    return policy, preprocessor, postprocessor
