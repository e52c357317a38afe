"""The reward-model ensemble: K tiny SARMs of different seeds combined into one checkpoint, labelled with the
members' mean progress and their spread (`progress_std`); strict loading; what `combine_checkpoints` refuses.
(The generic contract — save/load entry points, frame subsets, stride, online — runs the ensemble too:
`contract_helpers.CASES`, case "ensemble_sarm".)"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/models: the contract suite's helpers

from contract_helpers import (  # noqa: E402
    DUAL,
    ENCODER,
    EPISODE,
    EncoderFeatures,
    build_classifier,
    build_sarm,
    recorded_observations,
)

import rewardkit  # noqa: E402
from rewardkit.cli import main  # noqa: E402
from rewardkit.data.dataset import open_dataset  # noqa: E402
from rewardkit.encoders import make_encoder  # noqa: E402
from rewardkit.errors import RewardkitError  # noqa: E402
from rewardkit.labelling import episode_inputs  # noqa: E402
from rewardkit.models.base import CheckpointError  # noqa: E402
from rewardkit.models.ensemble import EnsembleRewardModel, combine_checkpoints  # noqa: E402
from rewardkit.models.sarm import SARMRewardModel  # noqa: E402
from rewardkit.online import RewardMonitor  # noqa: E402

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def encoder():
    return make_encoder(ENCODER)


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return open_dataset(root=tiny_dataset[0])


def sarm(dataset, encoder, seed: int, /, **overrides) -> SARMRewardModel:
    """A tiny sliding SARM (`build_sarm`'s config) initialised with `seed`."""
    config = replace(build_sarm(dataset, encoder, architecture="sliding").config, **overrides)
    torch.manual_seed(seed)
    return SARMRewardModel(config).eval()


@pytest.fixture(scope="module")
def member_folders(dataset, encoder, tmp_path_factory) -> list[Path]:
    """Three SARM checkpoints, one per seed, as `rewardkit train --seed=K` would leave them."""
    root = tmp_path_factory.mktemp("members")
    folders = []
    for seed in SEEDS:
        folder = root / f"seed{seed}"
        sarm(dataset, encoder, seed).save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def ensemble_folder(member_folders, tmp_path_factory) -> Path:
    return combine_checkpoints(member_folders, tmp_path_factory.mktemp("ens") / "ensemble")


@pytest.fixture(scope="module")
def features(dataset, encoder):
    return EncoderFeatures(dataset, encoder)


def inputs_for(model, dataset, features, frame_indices=None):
    episode = dataset.episode(EPISODE)
    return episode_inputs(dataset, model.required_inputs(), episode, features, frame_indices)


# ---- labelling ---------------------------------------------------------------------------------
def test_labels_are_the_members_mean_and_population_std(ensemble_folder, member_folders, dataset, features):
    ensemble = rewardkit.load(ensemble_folder)
    assert isinstance(ensemble, EnsembleRewardModel) and len(ensemble.members) == len(SEEDS)
    members = [rewardkit.load(folder) for folder in member_folders]
    for frames in (None, np.array([0, 3, 7, 23])):
        labels = ensemble.label_episode(inputs_for(ensemble, dataset, features, frames))
        own = np.stack(
            [m.label_episode(inputs_for(m, dataset, features, frames))["progress"] for m in members]
        )  # (K, F): each member's own labels, from its own checkpoint
        assert set(labels) == {"progress", "progress_std", "stage_probs"}  # single stage: K = 1
        np.testing.assert_allclose(labels["progress"], own.mean(0), atol=1e-6)
        np.testing.assert_allclose(labels["progress_std"], own.std(0), atol=1e-6)
        # the seeds differ, so the members disagree: the spread is a real number, not a zero column
        assert labels["progress_std"].max() > 1e-3
        assert labels["progress"].shape == labels["progress_std"].shape == (own.shape[1],)


def test_stage_probabilities_are_the_members_mean_when_they_share_the_stages(dataset, encoder, features):
    members = [sarm(dataset, encoder, seed, **DUAL) for seed in SEEDS]  # 2 sparse stages, 3 dense
    ensemble = EnsembleRewardModel.from_members(members)
    for frames in (None, np.array([0, 3, 7, 23])):
        labels = ensemble.label_episode(inputs_for(ensemble, dataset, features, frames))
        own = [m.label_episode(inputs_for(m, dataset, features, frames)) for m in members]
        for name, stages in (("stage_probs", 2), ("stage_probs_dense", 3)):
            mean = np.stack([o[name] for o in own]).mean(0)  # (F, K): the members' own stage probabilities
            assert labels[name].shape == (len(own[0]["progress"]), stages)
            np.testing.assert_allclose(labels[name], mean, atol=1e-6)
            np.testing.assert_allclose(labels[name].sum(1), 1.0, atol=1e-6)
            # the seeds differ, so the mean is not any one member's
            assert np.abs(labels[name] - own[0][name]).max() > 1e-3


def _fixed_ensemble(members):
    """An ensemble over stand-in members (only `label_episode` and, when given, `config` are read)."""
    ensemble = EnsembleRewardModel.__new__(EnsembleRewardModel)
    torch.nn.Module.__init__(ensemble)
    ensemble.members = members  # label_episode only iterates them
    return ensemble


class Fixed:
    """A stand-in member whose `label_episode` returns fixed outputs; `names` its stages' names."""

    def __init__(self, progress, names=None, **others):
        self.outputs = {"progress": np.asarray(progress, np.float32), **others}
        if names is not None:
            self.config = SimpleNamespace(sparse_subtask_names=names)

    def label_episode(self, inputs):
        return self.outputs


def test_stage_probabilities_are_left_out_unless_every_member_has_the_same_stages():
    from rewardkit.models.base import EpisodeInputs

    inputs = EpisodeInputs(episode_index=0, task="t", length=2, fps=10)
    two = np.array([[0.8, 0.2], [0.4, 0.6]])
    other = np.array([[0.2, 0.8], [0.0, 1.0]])
    same = _fixed_ensemble(
        [Fixed([0.1, 0.5], ["a", "b"], stage_probs=two), Fixed([0.3, 0.5], ["a", "b"], stage_probs=other)]
    )
    np.testing.assert_allclose(
        EnsembleRewardModel.label_episode(same, inputs)["stage_probs"], [[0.5, 0.5], [0.2, 0.8]], atol=1e-6
    )
    cases = {
        "one member has none": [Fixed([0.1, 0.5], stage_probs=two), Fixed([0.3, 0.5])],
        "another count": [
            Fixed([0.1, 0.5], stage_probs=two),
            Fixed([0.3, 0.5], stage_probs=np.ones((2, 3)) / 3),
        ],
        "other names": [
            Fixed([0.1, 0.5], ["a", "b"], stage_probs=two),
            Fixed([0.3, 0.5], ["b", "a"], stage_probs=other),
        ],
    }
    for case, members in cases.items():
        labels = EnsembleRewardModel.label_episode(_fixed_ensemble(members), inputs)
        assert set(labels) == {"progress", "progress_std"}, case


def test_a_dense_head_and_success_probability_are_averaged_when_every_member_has_them():
    from rewardkit.models.base import EpisodeInputs

    inputs = EpisodeInputs(episode_index=0, task="t", length=3, fps=10)
    members = [
        Fixed(
            [0.1, 0.2, 0.9], success_prob=np.array([0.0, 0.5, 1.0]), progress_dense=np.array([0.2, 0.2, 0.2])
        ),
        Fixed([0.3, 0.2, 0.5], success_prob=np.array([1.0, 0.5, 0.0])),
    ]
    labels = EnsembleRewardModel.label_episode(_fixed_ensemble(members), inputs)
    np.testing.assert_allclose(labels["progress"], [0.2, 0.2, 0.7], atol=1e-6)
    np.testing.assert_allclose(labels["progress_std"], [0.1, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(labels["success_prob"], [0.5, 0.5, 0.5], atol=1e-6)
    assert "progress_dense" not in labels  # one member has no dense head


def test_compute_reward_is_the_members_mean(ensemble_folder, member_folders):
    ensemble = rewardkit.load(ensemble_folder)
    members = [rewardkit.load(folder) for folder in member_folders]
    config = members[0].config
    generator = torch.Generator().manual_seed(0)
    width = config.n_obs_steps + 1
    batch = {
        "image_features": torch.randn(4, len(config.cameras), width, config.image_dim, generator=generator),
        "text_features": torch.randn(4, config.text_dim, generator=generator),
        "state": torch.randn(4, width, len(config.state_mean), generator=generator),
    }
    own = torch.stack([m.compute_reward(batch) for m in members])
    torch.testing.assert_close(ensemble.compute_reward(batch), own.mean(0))
    torch.testing.assert_close(ensemble.predict_progress_std(batch), own.std(0, correction=0))


# ---- online ------------------------------------------------------------------------------------
class CountingEncoder:
    """The tiny encoder, counting the images it encodes."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.images = 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_images(self, images):
        self.images += len(images)
        return self.encoder.encode_images(images)


def test_online_steps_equal_labelling_with_one_encoder_pass_per_frame(
    ensemble_folder, dataset, encoder, features
):
    ensemble = rewardkit.load(ensemble_folder)
    labels = ensemble.label_episode(inputs_for(ensemble, dataset, features))
    counting = CountingEncoder(encoder)
    monitor = RewardMonitor(ensemble, fps=dataset.fps, encoder=counting)
    observations = list(recorded_observations(dataset, EPISODE))
    outputs = [monitor.step(observation) for observation in observations]
    np.testing.assert_allclose([o.progress for o in outputs], labels["progress"], atol=1e-4)
    np.testing.assert_allclose([o.extras["progress_std"] for o in outputs], labels["progress_std"], atol=1e-4)
    # the members share one encoder: each frame of the one camera is encoded once, not once per member
    assert counting.images == len(observations)


def test_online_spread_equals_labelled_spread(ensemble_folder, dataset, features):
    ensemble = rewardkit.load(ensemble_folder)
    labels = ensemble.label_episode(inputs_for(ensemble, dataset, features))
    online = ensemble.online()
    steps = [online.step_features(online.encode(o)) for o in recorded_observations(dataset, EPISODE)]
    np.testing.assert_allclose([s.extras["progress_std"] for s in steps], labels["progress_std"], atol=1e-4)
    np.testing.assert_allclose(
        [np.mean(s.extras["member_progress"]) for s in steps], labels["progress"], atol=1e-4
    )


# ---- the checkpoint ----------------------------------------------------------------------------
def test_checkpoint_holds_each_members_config_and_weights_under_its_prefix(ensemble_folder, member_folders):
    config = json.loads((ensemble_folder / "config.json").read_text())
    assert config["type"] == "rewardkit_ensemble"
    assert config["members"] == [json.loads((f / "config.json").read_text()) for f in member_folders]
    weights = load_file(ensemble_folder / "model.safetensors")
    expected = {}
    for k, folder in enumerate(member_folders):
        expected.update(
            {f"members.{k}.{key}": value for key, value in load_file(folder / "model.safetensors").items()}
        )
    assert set(weights) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=0)
    assert sorted(p.name for p in ensemble_folder.iterdir()) == ["config.json", "model.safetensors"]


def _copy_with_weights(ensemble_folder: Path, target: Path, edit) -> Path:
    shutil.copytree(ensemble_folder, target)
    weights = load_file(target / "model.safetensors")
    edit(weights)
    save_file(weights, target / "model.safetensors")
    return target


def test_loading_is_strict_missing_and_unexpected_keys_name_the_file(ensemble_folder, tmp_path):
    missing_key = sorted(load_file(ensemble_folder / "model.safetensors"))[-1]
    assert missing_key.startswith("members.2.")
    missing = _copy_with_weights(ensemble_folder, tmp_path / "missing", lambda w: w.pop(missing_key))
    with pytest.raises(CheckpointError, match="missing keys") as error:
        rewardkit.load(missing)
    assert missing_key in str(error.value) and str(missing / "model.safetensors") in str(error.value)

    def add_member(weights):
        weights["members.3.head.weight"] = torch.zeros(2)

    unexpected = _copy_with_weights(ensemble_folder, tmp_path / "unexpected", add_member)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['members.3.head.weight'\]"):
        rewardkit.load(unexpected)


def test_a_config_with_one_member_or_mixed_types_is_refused(ensemble_folder, tmp_path):
    folder = tmp_path / "one"
    shutil.copytree(ensemble_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "members": config["members"][:1]}))
    with pytest.raises(RewardkitError, match="at least 2 members, its config lists 1"):
        rewardkit.load(folder)
    mixed = [config["members"][0], {**config["members"][1], "type": "rewardkit_classifier"}]
    (folder / "config.json").write_text(json.dumps({**config, "members": mixed}))
    with pytest.raises(RewardkitError, match="one model type"):
        rewardkit.load(folder)


# ---- combine: what it refuses, before writing anything ----------------------------------------
@pytest.mark.parametrize(
    "overrides, what",
    [
        ({"cameras": ["observation.images.wrist"]}, r"cameras \['observation.images.wrist'\]"),
        ({"encoder": "clip-random:other"}, "encoder 'clip-random:other'"),
        ({"use_state": False}, "no observation.state"),
    ],
    ids=["cameras", "encoder", "state"],
)
def test_combine_refuses_a_member_that_reads_other_inputs(
    member_folders, dataset, encoder, tmp_path, overrides, what
):
    other = tmp_path / "other"
    sarm(dataset, encoder, 5, **overrides).save_pretrained(other)
    output = tmp_path / "ensemble"
    with pytest.raises(RewardkitError, match=what) as error:
        combine_checkpoints([*member_folders[:2], other], output)
    assert str(other) in str(error.value)
    assert not output.exists()


def test_combine_refuses_another_model_type_and_one_member(member_folders, dataset, encoder, tmp_path):
    classifier = tmp_path / "classifier"
    build_classifier(dataset, encoder, backbone="frozen").save_pretrained(classifier)
    output = tmp_path / "ensemble"
    with pytest.raises(RewardkitError, match=f"{classifier} is a 'rewardkit_classifier' model") as error:
        combine_checkpoints([member_folders[0], classifier], output)
    assert "'rewardkit_sarm'" in str(error.value)
    with pytest.raises(RewardkitError, match="at least 2 checkpoints, got 1"):
        combine_checkpoints(member_folders[:1], output)
    assert not output.exists()


def test_combine_refuses_an_existing_output_without_overwrite(member_folders, tmp_path):
    output = tmp_path / "ensemble"
    output.mkdir()
    (output / "note.txt").write_text("mine")
    with pytest.raises(RewardkitError, match="already exists; pass --overwrite"):
        combine_checkpoints(member_folders, output)
    assert sorted(p.name for p in output.iterdir()) == ["note.txt"]
    combine_checkpoints(member_folders[:2], output, overwrite=True)
    assert len(rewardkit.load(output).members) == 2
    # the folder is replaced as a whole: nothing of the old one is kept, nothing temporary is left beside it
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble"]
    with pytest.raises(RewardkitError, match="is one of the checkpoints"):
        combine_checkpoints([member_folders[0], output], output, overwrite=True)
    # replacing a folder that holds a checkpoint would delete it
    runs = member_folders[0].parent
    with pytest.raises(RewardkitError, match=f"holds one of the checkpoints \\({member_folders[0]}\\)"):
        combine_checkpoints(member_folders, runs, overwrite=True)
    assert all((folder / "model.safetensors").is_file() for folder in member_folders)


def test_cli_overwrite_replaces_the_folder_as_a_whole_and_without_it_leaves_it_untouched(
    member_folders, tmp_path, capsys
):
    output = tmp_path / "ensemble"
    argv = ["ensemble", f"--checkpoints=[{member_folders[0]},{member_folders[1]}]", f"--output_dir={output}"]
    assert main(argv) == 0
    (output / "stray.txt").write_text("from an earlier run")
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    assert main(argv) == 2
    assert "already exists; pass --overwrite=true" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before

    three = ["ensemble", f"--checkpoints=[{','.join(map(str, member_folders))}]", f"--output_dir={output}"]
    assert main([*three, "--overwrite=true"]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "model.safetensors"]
    assert len(rewardkit.load(output).members) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble"]


# ---- the command line --------------------------------------------------------------------------
def test_cli_combines_then_label_writes_progress_std(member_folders, tiny_dataset, tmp_path, capsys):
    root, truths = tiny_dataset
    output = tmp_path / "ensemble"
    argv = ["ensemble", f"--checkpoints=[{member_folders[0]},{member_folders[1]}]", f"--output_dir={output}"]
    assert main(argv) == 0
    assert f"ensemble: {output.resolve()}" in capsys.readouterr().out
    assert main(argv) == 2  # exists now
    assert "already exists" in capsys.readouterr().err
    assert main(["ensemble", f"--checkpoints=[{member_folders[0]}]", f"--output_dir={tmp_path / 'x'}"]) == 2
    assert "at least 2 checkpoints" in capsys.readouterr().err

    progress = tmp_path / "progress.parquet"
    label = ["label", f"--dataset.root={root}", f"--model.path={output}", f"--output={progress}"]
    assert main([*label, f"--cache_dir={tmp_path / 'cache'}"]) == 0
    table = pq.read_table(progress)
    assert "progress_std" in table.column_names
    spread = table.column("progress_std").to_numpy()
    assert len(spread) == sum(t.length for t in truths)
    assert np.isfinite(spread).all() and spread.min() >= 0.0 and spread.max() > 1e-3

    # what reads the parquet or runs the model takes the ensemble as any other model
    curation = tmp_path / "curation"
    assert (
        main(["curate", f"--progress_path={progress}", f"--dataset.root={root}", f"--output_dir={curation}"])
        == 0
    )
    assert "disagreement" in (curation / "curation.csv").read_text().splitlines()[0]
    report = tmp_path / "eval"
    evaluate = ["eval", f"--dataset.root={root}", f"--models=[{output}]", f"--output_dir={report}"]
    assert main([*evaluate, "--episode_plots=1"]) == 0
    assert (report / "eval.json").is_file()
