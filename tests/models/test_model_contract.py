"""The contract every reward model passes (DESIGN.md, "A model is one folder"), run over every model and
architecture (`contract_helpers.CASES`), each tiny and randomly initialised:

1. save/load through every entry point (`rewardkit.load`, the class's `from_pretrained`, lerobot's factory)
   gives a model whose labels equal the original's;
2. `label_episode` gives one value per frame, in range, finite, stage probabilities that sum to 1;
3. a frame subset (`frame_indices`, and the labeller's `--stride`) equals the same frames of a full pass;
4. an online step (`RewardMonitor` driven through the recorded episode) equals labelling, or the model is
   refused online with a clear error (the centred SARM needs future frames).

A new model adds its `ModelCase`; it passes these tests or it is not done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from contract_helpers import (
    CASES,
    ENCODER,
    EPISODE,
    EncoderFeatures,
    ModelCase,
    recorded_observations,
    save_checkpoint,
)

import rewardkit
from rewardkit.data.dataset import RewardDataset, open_dataset
from rewardkit.encoders import make_encoder
from rewardkit.errors import RewardkitError
from rewardkit.labelling import episode_inputs, interpolate_outputs, label_dataset, strided_positions
from rewardkit.models.base import EpisodeInputs
from rewardkit.online import RewardMonitor

PER_FRAME = ("progress", "progress_dense", "success_prob")
STAGES = ("stage_probs", "stage_probs_dense")


@dataclass
class Subject:
    """One model of the suite, built once per module: the model, its dataset, its saved checkpoint, the
    features it reads, and its labels of episode `EPISODE` (a full pass)."""

    case: ModelCase
    model: Any
    dataset: RewardDataset
    folder: Path
    features: EncoderFeatures
    labels: dict[str, np.ndarray]

    @property
    def length(self) -> int:
        return self.dataset.episode(EPISODE).length

    def inputs(self, model: Any = None, frame_indices: np.ndarray | None = None) -> EpisodeInputs:
        """Episode `EPISODE` as the labeller hands it to `model` (default: the subject's model)."""
        model = self.model if model is None else model
        episode = self.dataset.episode(EPISODE)
        return episode_inputs(self.dataset, model.required_inputs(), episode, self.features, frame_indices)


@pytest.fixture(scope="module")
def encoder():
    return make_encoder(ENCODER)


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def subject(request, encoder, tmp_path_factory) -> Subject:
    case: ModelCase = request.param
    root, _ = request.getfixturevalue(case.dataset)
    dataset = open_dataset(root=root)
    model = case.build(dataset, encoder)
    folder = tmp_path_factory.mktemp(case.name) / "checkpoint"
    save_checkpoint(model, folder)
    features = EncoderFeatures(dataset, encoder)
    subject = Subject(case, model, dataset, folder, features, labels={})
    subject.labels = model.label_episode(subject.inputs())
    return subject


def lerobot_loaders(subject: Subject) -> dict[str, Any]:
    """Models loaded from the checkpoint through lerobot's factory, as lerobot-train / lerobot-eval do."""
    folder, meta = subject.folder, subject.dataset.meta
    if subject.case.lerobot_entry == "reward":
        from lerobot.configs.rewards import RewardModelConfig
        from lerobot.rewards.factory import make_reward_model

        config = RewardModelConfig.from_pretrained(folder)
        config.pretrained_path = str(folder)
        return {"make_reward_model": make_reward_model(config, dataset_stats=meta.stats, dataset_meta=meta)}
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_policy

    config = PreTrainedConfig.from_pretrained(folder)
    config.pretrained_path = folder
    return {
        "get_policy_class": get_policy_class(config.type).from_pretrained(folder),
        "make_policy": make_policy(config, ds_meta=meta),
    }


def assert_same_outputs(got: dict, expected: dict, frames: np.ndarray | None, length: int, atol: float, what):
    """`got` has the outputs of `expected` (a full pass) at `frames` (None: every frame). A model may
    ignore `frame_indices` and return every frame (`EpisodeInputs`): those are sampled at `frames`."""
    assert set(got) == set(expected), what
    for key, full in expected.items():
        value = np.asarray(got[key])
        if frames is not None:
            if len(value) == length and len(frames) != length:
                value = value[frames]
            full = full[frames]
        assert value.shape == full.shape, (what, key, value.shape, full.shape)
        np.testing.assert_allclose(value, full, atol=atol, err_msg=f"{what}: {key}")


# ---- 1. save / load ------------------------------------------------------------------------------
def test_save_load_round_trip_through_every_entry_point(subject):
    model, folder = subject.model, subject.folder
    loaded = {
        "rewardkit.load": rewardkit.load(folder),
        f"{type(model).__name__}.from_pretrained": type(model).from_pretrained(folder),
        **lerobot_loaders(subject),
    }
    for entry, other in loaded.items():
        assert type(other) is type(model), entry
        assert not other.training, entry
        assert other is not model
        assert_same_outputs(
            other.label_episode(subject.inputs(other)), subject.labels, None, subject.length, 1e-5, entry
        )


# ---- 2. shapes and range -------------------------------------------------------------------------
def test_outputs_have_one_value_per_frame_in_range(subject):
    labels, length = subject.labels, subject.length
    assert {key: value.shape[1:] for key, value in labels.items()} == subject.case.outputs
    for key, value in labels.items():
        assert isinstance(value, np.ndarray) and value.shape[0] == length, key
        assert np.isfinite(value).all(), key
    for key in set(labels) & set(PER_FRAME):
        assert labels[key].min() >= 0.0 and labels[key].max() <= 1.0, key
    for key in set(labels) & set(STAGES):
        assert labels[key].min() >= 0.0, key
        np.testing.assert_allclose(labels[key].sum(axis=1), 1.0, atol=1e-5, err_msg=key)
    # The progress depends on the frame: the equalities of the other checks can fail.
    assert np.ptp(labels["progress"]) > 1e-4, labels["progress"]


# ---- 3. a subset of frames -----------------------------------------------------------------------
def test_frame_subset_equals_the_same_frames_of_a_full_pass(subject):
    length = subject.length
    subsets = [np.array([1, 4, 5, 11, 17]), np.array([0]), np.array([length - 1]), np.arange(0, length, 5)]
    for frames in subsets:
        got = subject.model.label_episode(subject.inputs(frame_indices=frames))
        assert_same_outputs(got, subject.labels, frames, length, 1e-5, f"frames {frames.tolist()}")


def test_labeller_stride_equals_stride_one_at_the_labelled_frames(subject):
    model, dataset = subject.model, subject.dataset
    every = label_dataset(model, dataset, stride=1, features=subject.features, show_progress=False)
    strided = label_dataset(model, dataset, stride=3, features=subject.features, show_progress=False)
    assert [e.episode_index for e in strided] == [e.episode_index for e in every] == dataset.episode_indices
    for full, sparse in zip(every, strided, strict=True):
        positions = strided_positions(full.length, 3)
        expected = interpolate_outputs(
            positions, {k: v[positions] for k, v in full.outputs.items()}, full.length
        )
        assert_same_outputs(
            sparse.outputs, expected, None, full.length, 1e-5, f"episode {full.episode_index}"
        )
    # the labeller's full pass is the model's own
    ours = next(e for e in every if e.episode_index == EPISODE)
    assert_same_outputs(ours.outputs, subject.labels, None, subject.length, 1e-6, "label_dataset")


# ---- 4. online -----------------------------------------------------------------------------------
def test_online_step_equals_labelling_or_is_refused(subject):
    model, dataset, labels = subject.model, subject.dataset, subject.labels
    if not subject.case.online:
        with pytest.raises(RewardkitError, match="causal"):
            RewardMonitor(model, fps=dataset.fps)
        return
    monitor = RewardMonitor(model, fps=dataset.fps)
    observations = list(recorded_observations(dataset, EPISODE))
    for _ in observations[:5]:  # a previous episode's history must not leak past reset()
        monitor.step(observations[-1])
    monitor.reset()
    outputs = [monitor.step(observation) for observation in observations]
    np.testing.assert_allclose([o.progress for o in outputs], labels["progress"], atol=1e-4)
    if "success_prob" in labels:
        np.testing.assert_allclose([o.success_prob for o in outputs], labels["success_prob"], atol=1e-4)
    if "stage_probs" in labels:
        stage_probs = np.stack([o.extras["stage_probs"] for o in outputs])
        np.testing.assert_allclose(stage_probs, labels["stage_probs"], atol=1e-4)
