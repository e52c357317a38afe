"""RewACT learns its reward, with a camera and the defaults: a few training steps on two episodes of the
tiny dataset make the reward loss fall and rank the frames of a held-out episode (issue 17).

The old head (decoder output alone, the transformer's learning rate) stayed at the predict-the-mean level
in runs this short; see benchmarks/bench_rewact_quality.py for the measurements on the bundled dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rewact_helpers import make_policy_and_processors, tiny_config
from scipy.stats import spearmanr

STEPS = 40


def test_a_short_joint_run_lowers_the_reward_loss_and_ranks_a_held_out_episode(rewact_data):
    torch.manual_seed(0)
    _, meta, raw = rewact_data
    policy, preprocessor, _ = make_policy_and_processors(meta, use_vae=False, optimizer_lr=1e-3)
    normalised = preprocessor({k: v for k, v in raw.items() if isinstance(v, torch.Tensor)})
    frames = {k: v for k, v in normalised.items() if isinstance(v, torch.Tensor) and v.ndim > 0}
    episode = raw["episode_index"].numpy()
    train_rows = np.flatnonzero(episode != 2)
    held_out = {k: v[torch.as_tensor(np.flatnonzero(episode == 2))] for k, v in frames.items()}

    # lerobot-train's optimiser: the policy's own parameter groups (the reward head's learning rate).
    optimizer = torch.optim.AdamW(policy.get_optim_params(), lr=policy.config.optimizer_lr)
    rng = np.random.default_rng(0)
    policy.train()
    reward_losses = []
    for _ in range(STEPS):
        rows = torch.as_tensor(rng.choice(train_rows, 8, replace=False))
        loss, logs = policy.forward({k: v[rows] for k, v in frames.items()})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        reward_losses.append(logs["reward_loss"])

    assert np.mean(reward_losses[-5:]) < 0.5 * np.mean(reward_losses[:5])
    reward = policy.predict_reward(held_out).numpy()
    target = policy.progress_targets[held_out["index"]].numpy()
    # A constant reward has no correlation with the target (and its MAE is the target's spread around
    # the constant): the trained reward must rank the unseen episode's frames and sit closer to them.
    assert spearmanr(reward, target).statistic > 0.9
    assert np.abs(reward - target).mean() < np.abs(target - target.mean()).mean()


def test_the_head_reads_the_decoder_output_and_the_state_and_learns_at_its_own_rate(rewact_data):
    _, meta, raw = rewact_data
    policy, preprocessor, _ = make_policy_and_processors(meta, use_vae=False, optimizer_lr=2e-4)
    state_dim = raw["observation.state"].shape[1]
    assert policy.config.reward_head_parts == ("decoder", "state")  # "auto" with a robot state
    assert policy.reward_head[0].in_features == policy.config.dim_model + state_dim
    groups = policy.get_optim_params()
    head = {id(p) for p in policy.reward_head.parameters()}
    head_groups = [g for g in groups if any(id(p) in head for p in g["params"])]
    assert len(head_groups) == 1 and {id(p) for p in head_groups[0]["params"]} == head
    assert head_groups[0]["lr"] == pytest.approx(10 * 2e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(policy.parameters()))  # each once

    # The state is part of the reward's input: changing it changes the reward, same images.
    batch = preprocessor({k: v[:4] for k, v in raw.items() if isinstance(v, torch.Tensor)})
    moved = {**batch, "observation.state": batch["observation.state"] + 1.0}
    assert not torch.allclose(policy.predict_reward(batch), policy.predict_reward(moved))

    encoder_too = make_policy_and_processors(meta, reward_head_input="decoder+encoder+state")[0]
    assert encoder_too.reward_head[0].in_features == 2 * policy.config.dim_model + state_dim
    assert encoder_too.predict_reward(batch).shape == (4,)


@pytest.mark.parametrize("bad", ["", "decoder+decoder", "decoder+images", "Decoder"])
def test_a_bad_head_input_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="reward_head_input"):
        tiny_config(reward_head_input=bad)
    with pytest.raises(ValueError, match="reward_head_lr_scale"):
        tiny_config(reward_head_lr_scale=0.0)


def test_a_checkpoint_saved_before_the_state_input_loads_with_its_decoder_only_head(rewact_data, tmp_path):
    import json

    import rewardkit

    _, meta, raw = rewact_data
    old, preprocessor, _ = make_policy_and_processors(meta, reward_head_input="decoder")
    old.save_pretrained(tmp_path / "ckpt")
    preprocessor.save_pretrained(tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    saved = json.loads(config_path.read_text())
    # As written before these fields existed.
    for key in ("reward_head_input", "reward_head_lr_scale", "reward_head_detach"):
        del saved[key]
    config_path.write_text(json.dumps(saved))
    loaded = rewardkit.load(tmp_path / "ckpt")
    assert loaded.config.reward_head_parts == ("decoder",) and loaded.config.reward_head_lr_scale == 1.0
    # Its reward loss trained the shared network: fine-tuning it keeps doing so.
    assert loaded.config.reward_head_detach is False
    assert "eps" not in loaded.get_optim_params()[-1]
    batch = preprocessor({k: v[:4] for k, v in raw.items() if isinstance(v, torch.Tensor)})
    torch.testing.assert_close(loaded.predict_reward(batch), old.predict_reward(batch))
