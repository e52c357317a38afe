"""RewardMonitor: completion with hysteresis and hold time, stall, reset; driven through recorded episodes
with a controlled model, a trained classifier, a causal SARM (online == offline labels) and RewACT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.data.dataset import DatasetConfig, open_dataset
from rewardkit.errors import RewardkitError
from rewardkit.models.base import EpisodeInputs
from rewardkit.online import FunctionOnline, RewardMonitor, StepOutput

CAMERAS = ["observation.images.top", "observation.images.wrist"]


def scripted(values):
    """A model whose output is the next value of `values` at each step."""
    stream = iter(values)
    return FunctionOnline(lambda observation: next(stream))


def run(monitor, count):
    return [monitor.step({}) for _ in range(count)]


# ---- the rules on scripted signals --------------------------------------------------------------
def test_completion_needs_the_hold_time_tolerates_dips_above_release_and_fires_once():
    values = [0.5, 0.92, 0.85, 0.91, 0.93, 0.95, 0.99, 0.7, 0.99, 0.99]
    monitor = RewardMonitor(
        scripted(values), fps=10, complete_threshold=0.9, release_threshold=0.8, hold_seconds=0.3
    )
    outs = run(monitor, len(values))
    # armed at step 1 (t=0.1), the dip to 0.85 stays above release, 0.3 s later (step 4) it fires
    assert [o.completed for o in outs] == [
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    assert [o.done for o in outs] == [False] * 4 + [True] * 6
    assert monitor.done


def test_a_dip_below_release_restarts_the_hold():
    values = [0.95, 0.7, 0.95, 0.95, 0.95, 0.95]
    monitor = RewardMonitor(
        scripted(values), fps=10, complete_threshold=0.9, release_threshold=0.8, hold_seconds=0.3
    )
    outs = run(monitor, len(values))
    assert [o.completed for o in outs].index(True) == 5
    assert sum(o.completed for o in outs) == 1


def test_zero_hold_fires_at_the_crossing_and_noise_below_threshold_never_fires():
    monitor = RewardMonitor(scripted([0.1, 0.95]), fps=10, hold_seconds=0.0)
    assert [o.completed for o in run(monitor, 2)] == [False, True]
    noisy = 0.85 + 0.04 * np.sin(np.arange(100))  # hovers around the release threshold, below 0.9
    monitor = RewardMonitor(scripted(noisy), fps=10)
    assert not any(o.completed or o.done for o in run(monitor, 100))


def test_stall_after_seconds_without_progress_and_clears_when_progress_resumes():
    values = [0.1, 0.2, 0.3, 0.3, 0.305, 0.3, 0.29, 0.3, 0.5, 0.6]
    monitor = RewardMonitor(scripted(values), fps=10, stall_seconds=0.4, stall_epsilon=0.01)
    outs = run(monitor, len(values))
    # last increase > 0.01 at step 2 (t=0.2): stalled from t=0.6 (step 6) until progress resumes at step 8
    assert [o.stalled for o in outs] == [False] * 6 + [True, True, False, False]
    assert outs[7].seconds_since_progress == pytest.approx(0.5)


def test_reset_clears_history_and_events_and_timestamps_drive_time():
    monitor = RewardMonitor(scripted([0.95, 0.95, 0.0, 0.0, 0.95, 0.95]), hold_seconds=1.0)
    assert not monitor.step({}, timestamp=10.0).completed
    assert monitor.step({}, timestamp=11.0).completed
    monitor.reset()
    assert not monitor.done and monitor.step_index == 0
    outs = [monitor.step({}, timestamp=t) for t in (0.0, 5.0, 6.0, 7.0)]
    assert outs[0].time_s == 0.0 and outs[3].time_s == 7.0
    assert [o.completed for o in outs] == [False, False, False, True]


def test_success_prob_drives_completion_when_the_model_has_one():
    def model(observation):
        return StepOutput(progress=0.1, success_prob=0.99)

    out = RewardMonitor(model, fps=10, hold_seconds=0).step({})
    assert out.completed and out.signal == 0.99 and out.progress == 0.1
    out = RewardMonitor(model, fps=10, hold_seconds=0, signal="progress").step({})
    assert not out.completed


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="release_threshold"):
        RewardMonitor(scripted([]), complete_threshold=0.5, release_threshold=0.6)
    with pytest.raises(ValueError, match="signal"):
        RewardMonitor(scripted([]), signal="reward")
    with pytest.raises(ValueError, match="no online adapter"):
        RewardMonitor(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="success probability"):
        RewardMonitor(scripted([0.5]), signal="success_prob").step({})


# ---- recorded episodes ----------------------------------------------------------------------------
def recorded_observations(root, episode_index, cameras=CAMERAS):
    """The observations a robot loop would have produced while recording one episode."""
    dataset = open_dataset(root=root)
    frames = {cam: dataset.read_frames(episode_index, cam) for cam in cameras}
    state = dataset.read_columns(episode_index, ["observation.state"])["observation.state"]
    task = dataset.episode(episode_index).task
    for t in range(len(state)):
        yield {**{cam: frames[cam][t] for cam in cameras}, "observation.state": state[t], "task": task}


def drive(monitor, observations):
    monitor.reset()
    return [monitor.step(obs) for obs in observations]


def test_recorded_success_completes_once_and_failure_never_but_stalls(two_camera_dataset):
    root, truths = two_camera_dataset
    assert not truths[0].failed and truths[3].failed
    # a model whose output we control: the state's progress channel (noisy ground truth)
    monitor = RewardMonitor(
        lambda obs: float(np.clip(obs["observation.state"][0], 0, 1)),
        fps=10, complete_threshold=0.9, release_threshold=0.8, hold_seconds=0.1, stall_seconds=0.5,
        stall_epsilon=0.02,
    )  # fmt: skip
    success = drive(monitor, recorded_observations(root, 0))
    assert sum(o.completed for o in success) == 1
    assert success[-1].done and not any(o.stalled for o in success)
    failure = drive(monitor, recorded_observations(root, 3))
    assert not any(o.completed or o.done for o in failure)
    assert any(o.stalled for o in failure)
    first_stall = next(o for o in failure if o.stalled)
    assert first_stall.time_s > float(np.argmax(truths[3].progress)) / 10  # after the episode's peak


@pytest.fixture(scope="module")
def trained_classifier(two_camera_dataset, tmp_path_factory):
    from rewardkit.models.classifier import SuccessClassifierConfig
    from rewardkit.training.classifier import (
        ClassifierTrainConfig,
        SuccessLabelConfig,
        train_classifier,
    )

    cfg = ClassifierTrainConfig(
        dataset=DatasetConfig(root=str(two_camera_dataset[0])),
        model=SuccessClassifierConfig(backbone="finetune", cnn="convnet", image_size=16, hidden_dim=32, device="cpu"),
        labels=SuccessLabelConfig(source="last_k", last_k=5),
        failed_episodes=[3],
        steps=30, batch_size=32, lr=1e-3, output_dir=str(tmp_path_factory.mktemp("clf")),
    )  # fmt: skip
    model, metrics = train_classifier(cfg)
    assert metrics["auroc"] > 0.9, metrics
    return model


def test_trained_classifier_completes_on_the_success_episode_only(trained_classifier, two_camera_dataset):
    root, _ = two_camera_dataset
    monitor = RewardMonitor(
        trained_classifier, fps=10, complete_threshold=0.7, release_threshold=0.5, hold_seconds=0.1
    )
    success = drive(monitor, recorded_observations(root, 0))
    assert sum(o.completed for o in success) == 1
    assert all(o.success_prob is not None and 0 <= o.success_prob <= 1 for o in success)
    assert success[0].success_prob < 0.5  # the start of a successful episode is not a success
    failure = drive(monitor, recorded_observations(root, 3))
    assert not any(o.completed for o in failure)


# ---- SARM and RewACT adapters ---------------------------------------------------------------------
def _tiny_causal_sarm(architecture):
    """A tiny causal SARM over clip-random:tiny features (one camera), and its encoder."""
    from rewardkit.encoders import make_encoder
    from rewardkit.models.sarm import SARMConfig, SARMRewardModel

    encoder = make_encoder("clip-random:tiny")
    dim = encoder.feature_dim
    torch.manual_seed(0)
    config = SARMConfig(
        hidden_dim=32, num_layers=2, num_heads=4, n_obs_steps=3, frame_gap=2, max_rewind_steps=2, image_dim=dim,
        text_dim=dim, max_state_dim=8, dropout=0.0, cameras=["observation.images.top"],
        encoder="clip-random:tiny", device="cpu", architecture=architecture,
    )  # fmt: skip
    return SARMRewardModel(config).eval(), encoder


@pytest.mark.parametrize("architecture", ["sliding", "lerobot"])
def test_causal_sarm_online_equals_offline_labels(tiny_dataset, architecture):
    model, encoder = _tiny_causal_sarm(architecture)
    root, _ = tiny_dataset
    dataset = open_dataset(root=root)
    frames = dataset.read_frames(1, "observation.images.top")
    state = dataset.read_columns(1, ["observation.state"])["observation.state"]
    task = dataset.episode(1).task
    offline = model.label_episode(
        EpisodeInputs(
            episode_index=1, task=task, length=len(frames), fps=10, state=state,
            image_features={"observation.images.top": encoder.encode_images(frames).numpy()},
            text_features=encoder.encode_texts([task])[0].numpy(),
        )
    )  # fmt: skip
    monitor = RewardMonitor(model, fps=10, encoder=encoder)
    online = drive(monitor, recorded_observations(root, 1, cameras=["observation.images.top"]))
    np.testing.assert_allclose([o.progress for o in online], offline["progress"], atol=1e-4)
    assert [o.extras["stage"] for o in online] == list(offline["stage_probs"].argmax(-1))
    if architecture == "sliding":
        # per-layer keys and values of the last frame_gap * max(band) frames (bands [1, 2]), however long the episode
        assert monitor.online.stream.stage._ring.shape[:2] == (4, 2)
    else:  # the ring buffer holds n_obs_steps * frame_gap + 1 frames, however long the episode
        assert monitor.online.history == 7 and monitor.online._features.shape[0] == 7


@pytest.mark.parametrize("architecture", ["sliding", "lerobot"])
def test_causal_sarm_monitor_on_bf16_weights_tracks_fp32(tiny_dataset, architecture):
    """RewardMonitor(model, dtype=torch.bfloat16) steps on a bf16 copy of the transformers' weights (the
    model passed in keeps float32) and its progress stays within bf16's precision of the float32 step."""
    model, encoder = _tiny_causal_sarm(architecture)
    root, _ = tiny_dataset
    observations = list(recorded_observations(root, 1, cameras=["observation.images.top"]))
    exact = drive(RewardMonitor(model, fps=10, encoder=encoder), observations)
    low_monitor = RewardMonitor(model, fps=10, encoder=encoder, dtype=torch.bfloat16)
    low = drive(low_monitor, observations)
    assert low_monitor.online.dtype == torch.bfloat16
    assert {p.dtype for p in low_monitor.online.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the caller's model is untouched
    exact_progress = np.array([o.progress for o in exact])
    low_progress = np.array([o.progress for o in low])
    assert not np.array_equal(low_progress, exact_progress)  # it did run in bf16...
    np.testing.assert_allclose(low_progress, exact_progress, atol=0.03)  # ...within bf16's ~3 digits
    # a dtype by name is the same; a non-float one is refused with the accepted names
    by_name = drive(RewardMonitor(model, fps=10, encoder=encoder, dtype="bf16"), observations)
    np.testing.assert_array_equal([o.progress for o in by_name], low_progress)
    with pytest.raises(RewardkitError, match="dtype must be a floating torch dtype"):
        RewardMonitor(model, encoder=encoder, dtype="int8")


def test_centred_sarm_is_refused_online():
    from rewardkit.models.sarm import SARMConfig, SARMRewardModel

    config = SARMConfig(
        hidden_dim=32, num_layers=1, num_heads=4, n_obs_steps=4, frame_gap=2, max_rewind_steps=2, image_dim=8,
        text_dim=8, max_state_dim=8, cameras=["observation.images.top"], window="centred", device="cpu",
    )  # fmt: skip
    with pytest.raises(ValueError, match="causal"):
        RewardMonitor(SARMRewardModel(config), encoder=object())


def test_rewact_online_reward_equals_its_episode_labels(tiny_dataset):
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from rewardkit.models.rewact import RewACTConfig

    root, _ = tiny_dataset
    meta = LeRobotDatasetMetadata("local/tiny", root=root)
    config = RewACTConfig(
        dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_vae_encoder_layers=1, latent_dim=4,
        chunk_size=5, n_action_steps=5, pretrained_backbone_weights=None, device="cpu",
    )  # fmt: skip
    torch.manual_seed(0)
    policy = make_policy(config, ds_meta=meta)
    policy.preprocessor, _ = make_pre_post_processors(config, dataset_stats=meta.stats)
    dataset = open_dataset(root=root)
    inputs = EpisodeInputs(
        episode_index=2, task="", length=dataset.episode(2).length, fps=10,
        state=dataset.read_columns(2, ["observation.state"])["observation.state"],
        frames=lambda cam: dataset.read_frames(2, cam),
    )  # fmt: skip
    offline = policy.label_episode(inputs)["progress"]
    monitor = RewardMonitor(policy, fps=10)
    online = drive(monitor, recorded_observations(root, 2, cameras=["observation.images.top"]))
    np.testing.assert_allclose([o.progress for o in online], offline, atol=1e-5)
    acting = RewardMonitor(policy, fps=10, act=True)
    out = acting.step(next(recorded_observations(root, 2, cameras=["observation.images.top"])))
    assert out.extras["action"].shape == (1, 3) and out.progress == pytest.approx(offline[0], abs=1e-5)
