"""RewACT: the reward head trains (with and without the VAE), ranks frames, round-trips through save/load,
and `select_action` returns (action, reward) on every call."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_STATE
from rewact_helpers import make_policy_and_processors, tiny_config
from scipy.stats import spearmanr

import rewardkit
from rewardkit.data.targets import failure_progress, keyframe_progress, linear_progress
from rewardkit.errors import RewardkitError
from rewardkit.models.base import EpisodeInputs
from rewardkit.models.rewact import RewACTPolicy, build_progress_targets


def train(policy: RewACTPolicy, batch: dict, steps: int, lr: float = 1e-3) -> list[dict]:
    # lerobot-train's optimiser: the policy's parameter groups (the reward head at reward_head_lr_scale x
    # the transformer's lr, with its own AdamW epsilon when detached).
    policy.config.optimizer_lr = lr
    optimizer = torch.optim.AdamW(policy.get_optim_params(), lr=lr)
    policy.train()
    logs = []
    for _ in range(steps):
        loss, log = policy.forward(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logs.append({**log, "loss": loss.item()})
    return logs


def observations(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k.startswith("observation.")}


def state_toy(meta, raw, **overrides):
    """A toy task: RewACT reading the robot state (as state and environment-state tokens), no camera.

    The tiny dataset's state[0] follows the episode's progress, so a few steps teach the head to rank
    frames; without a backbone, training takes seconds on a loaded CPU.
    """
    config = tiny_config(**overrides)
    state = PolicyFeature(type=FeatureType.STATE, shape=(4,))
    config.input_features = {OBS_STATE: state, OBS_ENV_STATE: PolicyFeature(type=FeatureType.ENV, shape=(4,))}
    config.output_features = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(3,))}
    policy = RewACTPolicy(config, dataset_meta=meta)
    stats = meta.stats
    standard = (raw[OBS_STATE] - stats[OBS_STATE]["mean"]) / stats[OBS_STATE]["std"]
    batch = {
        OBS_STATE: standard.float(),
        OBS_ENV_STATE: standard.float(),
        ACTION: ((raw[ACTION] - stats[ACTION]["mean"]) / stats[ACTION]["std"]).float(),
        "action_is_pad": raw["action_is_pad"],
        "index": raw["index"],
    }
    return policy, batch


@pytest.fixture(scope="module")
def trained(rewact_data):
    """A tiny RewACT with a camera, trained a few steps on a dozen frames: (policy, batch, logs)."""
    torch.manual_seed(0)
    _, meta, raw = rewact_data
    policy, preprocessor, _ = make_policy_and_processors(meta, use_vae=False, reward_loss_weight=10.0)
    batch = preprocessor({k: v[::5] for k, v in raw.items() if isinstance(v, torch.Tensor)})
    logs = train(policy, batch, steps=3)
    policy.preprocessor = preprocessor
    return policy, batch, logs


def test_training_without_vae_learns_a_linear_target_well_enough_to_rank_frames(rewact_data):
    torch.manual_seed(0)
    _, meta, raw = rewact_data
    policy, batch = state_toy(meta, raw, use_vae=False, reward_loss_weight=10.0)
    logs = train(policy, batch, steps=60)
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]
    assert logs[-1]["reward_loss"] < 0.5 * logs[0]["reward_loss"]
    observation = {OBS_STATE: batch[OBS_STATE], OBS_ENV_STATE: batch[OBS_ENV_STATE]}
    progress = policy.predict_reward(observation).numpy()
    targets = policy.progress_targets[batch["index"]].numpy()
    assert np.all((progress >= 0) & (progress <= 1))
    assert spearmanr(progress, targets).statistic > 0.8


def test_training_with_vae_and_a_camera_trains_the_reward_head_too(rewact_data):
    torch.manual_seed(0)
    _, meta, raw = rewact_data
    policy, preprocessor, _ = make_policy_and_processors(meta, use_vae=True, reward_loss_weight=10.0)
    batch = preprocessor({k: v[::6] for k, v in raw.items() if isinstance(v, torch.Tensor)})
    logs = train(policy, batch, steps=8)
    assert "kld_loss" in logs[0] and "reward_loss" in logs[0]
    assert logs[-1]["reward_loss"] < logs[0]["reward_loss"]
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert logs[-1]["loss"] < logs[0]["loss"]


def test_distributional_head_trains_and_reads_out_the_expected_value(rewact_data):
    torch.manual_seed(0)
    _, meta, raw = rewact_data
    # The head on the decoder output alone (as it was written for): this test is about the readout.
    policy, batch = state_toy(
        meta,
        raw,
        use_vae=False,
        reward_head="distributional",
        reward_num_bins=11,
        reward_loss_weight=5.0,
        reward_head_input="decoder",
    )
    assert policy.reward_head[-1].out_features == 11
    logs = train(policy, batch, steps=60)
    assert logs[-1]["reward_loss"] < 0.9 * logs[0]["reward_loss"]
    policy.eval()
    logits = policy.reward_head(torch.randn(3, policy.reward_head[0].in_features))
    expected = (logits.softmax(-1) * torch.linspace(0, 1, 11)).sum(-1)
    torch.testing.assert_close(policy._reward_from_head(logits), expected)
    progress = policy.predict_reward(
        {OBS_STATE: batch[OBS_STATE], OBS_ENV_STATE: batch[OBS_ENV_STATE]}
    ).numpy()
    assert np.all((progress >= 0) & (progress <= 1))
    targets = policy.progress_targets[batch["index"]].numpy()
    assert spearmanr(progress, targets).statistic > 0.8


def test_distributional_loss_is_smallest_at_the_target(rewact_data):
    _, meta, _ = rewact_data
    policy = make_policy_and_processors(meta, reward_head="distributional", reward_num_bins=5)[0]
    target = torch.tensor([0.3])
    # Logits equal to the log of the two-hot distribution of 0.3 (bins 0, .25, .5, .75, 1): mass .8 / .2.
    best = torch.log(torch.tensor([[1e-6, 0.8, 0.2, 1e-6, 1e-6]]))
    worse = torch.log(torch.tensor([[1e-6, 0.2, 0.8, 1e-6, 1e-6]]))
    assert policy.reward_loss_per_sample(best, target) < policy.reward_loss_per_sample(worse, target)
    assert policy._reward_from_head(best).item() == pytest.approx(0.3, abs=1e-4)


def test_reward_only_path_equals_the_full_forward(trained):
    policy, batch, _ = trained
    obs = observations(batch)
    actions, reward = policy.predict_action_chunk_and_reward(obs)
    assert actions.shape == (len(reward), 5, 3)
    torch.testing.assert_close(policy.predict_reward(obs), reward, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_gives_identical_outputs(trained, tmp_path):
    policy, batch, _ = trained
    obs = observations(batch)
    policy.save_pretrained(tmp_path / "ckpt")
    policy.preprocessor.save_pretrained(tmp_path / "ckpt")
    actions, reward = policy.predict_action_chunk_and_reward(obs)
    for loaded in (RewACTPolicy.from_pretrained(tmp_path / "ckpt"), rewardkit.load(tmp_path / "ckpt")):
        assert isinstance(loaded, RewACTPolicy)
        loaded_actions, loaded_reward = loaded.predict_action_chunk_and_reward(obs)
        torch.testing.assert_close(loaded_actions, actions, rtol=0, atol=0)
        torch.testing.assert_close(loaded_reward, reward, rtol=0, atol=0)
    assert rewardkit.load(tmp_path / "ckpt").preprocessor is not None


def test_label_episode_matches_the_lerobot_data_path(trained, rewact_data, tmp_path):
    from rewardkit.data.dataset import open_dataset

    policy, _, _ = trained
    root, _, _ = rewact_data
    policy.save_pretrained(tmp_path / "ckpt")
    policy.preprocessor.save_pretrained(tmp_path / "ckpt")
    model = rewardkit.load(tmp_path / "ckpt")
    model.config.label_batch_size = 7  # several batches, the last one partial
    inputs = model.required_inputs()
    assert inputs.cameras == ["observation.images.top"] and inputs.state and inputs.encoder is None
    dataset = open_dataset(root=root)
    episode = dataset.episodes()[1]
    state = dataset.read_columns(1, ["observation.state"])["observation.state"]
    episode_inputs = EpisodeInputs(
        episode_index=1,
        task=episode.task,
        length=episode.length,
        fps=dataset.fps,
        state=state,
        frames=lambda camera: dataset.read_frames(1, camera),
    )
    progress = model.label_episode(episode_inputs)["progress"]
    assert progress.shape == (episode.length,) and progress.dtype == np.float32
    _, _, raw = rewact_data
    rows = (raw["episode_index"] == 1).nonzero()[:, 0]
    episode_batch = policy.preprocessor(
        {k: raw[k][rows] for k in ("observation.state", "observation.images.top")}
    )
    expected = policy.predict_reward(episode_batch).numpy()
    np.testing.assert_allclose(progress, expected, atol=2e-3)  # video decoders may differ by a grey level


@pytest.mark.parametrize("refresh", ["every_step", "on_refill"])
def test_select_action_returns_action_and_reward_200_times(trained, refresh):
    policy, batch, _ = trained
    policy.config.reward_refresh = refresh
    policy.reset()
    calls = {"n": 0}
    original = policy.model.forward

    def counting_forward(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    policy.model.forward = counting_forward
    frames = len(batch["index"])
    rewards, checks = [], 0
    try:
        for step in range(200):
            obs = {k: v[step % frames : step % frames + 1] for k, v in observations(batch).items()}
            action, reward = policy.select_action(obs)
            assert action.shape == (1, 3) and reward.shape == (1,)
            assert 0.0 <= reward.item() <= 1.0
            rewards.append(reward.item())
            if refresh == "every_step" and step % 10 == 3:  # the reward is the latest observation's
                torch.testing.assert_close(reward, policy.predict_reward(obs))
                checks += 1
    finally:
        del policy.model.forward
        policy.config.reward_refresh = "every_step"
    chunks = 200 // 5
    if refresh == "on_refill":
        assert calls["n"] == chunks  # the model runs only when the queue refills
        assert all(len(set(rewards[i : i + 5])) == 1 for i in range(0, 200, 5))
        assert len(set(rewards)) > 1
    else:
        # one forward per chunk, one reward-only forward per queued step (plus the checks)
        assert calls["n"] == chunks + (200 - chunks) + checks


def test_return_reward_false_gives_the_action_only(trained):
    policy, batch, _ = trained
    policy.config.return_reward = False
    try:
        policy.reset()
        obs = {k: v[:1] for k, v in observations(batch).items()}
        action = policy.select_action(obs)
        assert isinstance(action, torch.Tensor) and action.shape == (1, 3)
    finally:
        policy.config.return_reward = True


def test_linear_targets_are_looked_up_by_global_index(rewact_data):
    _, meta, raw = rewact_data
    table = build_progress_targets(tiny_config(), meta)
    expected = np.concatenate([linear_progress(n) for n in (20, 24, 16)])
    np.testing.assert_array_equal(table, expected)
    policy = make_policy_and_processors(meta)[0]
    order = torch.tensor([59, 0, 21, 43])
    np.testing.assert_array_equal(policy.progress_targets_for({"index": order}).numpy(), expected[order])
    with pytest.raises(ValueError, match="outside the progress target table"):
        policy.progress_targets_for({"index": torch.tensor([60])})


def test_failure_frames_give_failed_targets_that_hold_or_drop(rewact_data):
    """A failure frame (episode 1, frames 20-43, failed at its frame 6) stops the failed episode's targets
    there: held at the level reached (default) or dropped to 0, instead of rising to the 0.9 cap."""
    _, meta, _ = rewact_data
    base = linear_progress(24)
    held = build_progress_targets(
        tiny_config(reward_targets="failure", failed_episodes=[1], failure_frames=[6]), meta
    )
    np.testing.assert_array_equal(held[20:44], failure_progress(24, base, fail_frame=6, after="hold"))
    assert held[43] == held[26] < 0.5 and held[19] == 1.0  # ends where it failed; successes untouched
    dropped = build_progress_targets(
        tiny_config(reward_targets="failure", failed_episodes=[1], failure_frames=[6], failure_target="drop"),
        meta,
    )
    assert dropped[43] == 0.0 and dropped[25] == held[25] > 0.0
    with pytest.raises(RewardkitError, match="failure_frames has 2 frames for 1 failed_episodes"):
        tiny_config(reward_targets="failure", failed_episodes=[1], failure_frames=[6, 7])
    with pytest.raises(RewardkitError, match="failure_target must be one of"):
        tiny_config(failure_target="stop")


def test_failure_keyframe_and_parquet_targets(rewact_data, tmp_path):
    _, meta, _ = rewact_data
    failed = build_progress_targets(tiny_config(reward_targets="failure", failed_episodes=[1]), meta)
    np.testing.assert_array_equal(failed[20:44], failure_progress(24, linear_progress(24)))
    assert failed[43] < 1.0 and failed[19] == 1.0

    keyframes = tmp_path / "keyframes.json"
    keyframes.write_text(json.dumps({"unit": "frames", "episodes": {"2": [[4, 0.5], [12, 1.0]]}}))
    table = build_progress_targets(
        tiny_config(reward_targets="keyframe", reward_targets_path=str(keyframes)), meta
    )
    np.testing.assert_array_equal(table[44:60], keyframe_progress(16, [(4, 0.5), (12, 1.0)]))
    np.testing.assert_array_equal(table[:20], linear_progress(20))

    parquet = tmp_path / "progress.parquet"
    pq.write_table(
        pa.table(
            {
                "index": [3, 50],
                "episode_index": [0, 2],
                "frame_index": [3, 6],
                "progress_sparse": [0.25, 0.75],
            }
        ),
        parquet,
    )
    table = build_progress_targets(
        tiny_config(reward_targets="parquet", reward_targets_path=str(parquet)), meta
    )
    assert table[3] == 0.25 and table[50] == 0.75 and np.isnan(table[4])


def test_frames_without_a_target_do_not_count_and_missing_targets_are_an_error(rewact_data):
    _, meta, raw = rewact_data
    policy, preprocessor, _ = make_policy_and_processors(meta, use_vae=False)
    batch = preprocessor({k: v[:4] if hasattr(v, "__getitem__") else v for k, v in raw.items()})
    policy.set_progress_targets(np.full(60, np.nan, dtype=np.float32))
    _, logs = policy.forward(batch)
    assert logs["reward_loss"] == 0.0
    bare = RewACTPolicy(policy.config)  # no dataset metadata: no targets
    with pytest.raises(ValueError, match="no progress targets"):
        bare.forward(batch)
    with pytest.raises(ValueError, match="reward_head"):
        tiny_config(reward_head="gaussian")
    with pytest.raises(ValueError, match="reward_target_column"):
        tiny_config(reward_target_column="progress")


def test_training_targets_are_the_targets_eval_scores_against(rewact_data, tmp_path):
    # Episode 1's keyframes reach 1.0 and drop: a failure (capped) for eval, so for training too; episode
    # 2 is failed by flag; episode 0 has rising keyframes.
    from rewardkit.data.annotations import load_progress_targets

    root, meta, _ = rewact_data
    keyframes = tmp_path / "keyframes.json"
    episodes = {"0": [[5, 0.5], [15, 1.0]], "1": [[4, 0.5], [10, 1.0], [18, 0.2]]}
    keyframes.write_text(json.dumps({"unit": "frames", "episodes": episodes}))
    config = tiny_config(reward_targets="keyframe", reward_targets_path=str(keyframes), failed_episodes=[2])
    training = build_progress_targets(config, meta)
    scored = load_progress_targets(root, keyframes=keyframes, failed=[2])
    np.testing.assert_array_equal(training, np.concatenate([scored[e] for e in (0, 1, 2)]))
    assert training[20:44].max() < 1.0 and training[44:].max() < 1.0 and training[19] == 1.0


def test_parquet_targets_that_do_not_fit_the_dataset_are_refused(rewact_data, tmp_path):
    _, meta, _ = rewact_data
    parquet = tmp_path / "progress.parquet"
    # Episode 0 has 20 frames (global 0..19): a row at global index 25 is not one of its frames.
    pq.write_table(
        pa.table(
            {"index": [3, 25], "episode_index": [0, 0], "frame_index": [3, 25], "progress_sparse": [0.1, 0.2]}
        ),
        parquet,
    )
    config = tiny_config(reward_targets="parquet", reward_targets_path=str(parquet))
    with pytest.raises(ValueError, match="episode 0 are not frames of that episode"):
        build_progress_targets(config, meta)
