"""lerobot's Robometer as a rewardkit model, on a tiny random Qwen3-VL (never downloaded): parity with
lerobot's own compute path, save/load through every entry point, the online adapter's every-k-th-step
scoring, and clear errors for folders that are not a Robometer or not a Qwen3-VL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from robometer_helpers import CAMERA, lerobot_robometer_checkpoint

import rewardkit
from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.errors import RewardkitError
from rewardkit.models.base import EpisodeInputs
from rewardkit.models.robometer import RewardkitRobometerRewardModel, load_robometer
from rewardkit.online.monitor import RewardMonitor

EPISODE = 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A lerobot "robometer" checkpoint around a tiny random Qwen3-VL."""
    return lerobot_robometer_checkpoint(tmp_path_factory.mktemp("robometer"), seed=3)


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return open_dataset(root=tiny_dataset[0])


def episode_inputs(dataset, episode_index=EPISODE, frame_indices=None) -> EpisodeInputs:
    episode = dataset.episode(episode_index)
    video = dataset.read_frames(episode_index, CAMERA)
    return EpisodeInputs(
        episode_index=episode_index,
        task=episode.task,
        length=episode.length,
        fps=dataset.fps,
        frames=lambda camera: video,
        frame_indices=frame_indices,
    )


def lerobot_progress(checkpoint: Path, frames: np.ndarray, task: str, k: int = 4) -> np.ndarray:
    """lerobot's compute path for every frame of an episode, as `compute_robometer_progress` runs it:
    lerobot's model (`RobometerRewardModel.from_pretrained`), its encoder step on a transition of
    (B, K, C, H, W) frames built with `_build_subsample_indices`, and `compute_reward`."""
    from lerobot.configs.rewards import RewardModelConfig
    from lerobot.lerobot_types import TransitionKey
    from lerobot.rewards.robometer import RobometerRewardModel
    from lerobot.rewards.robometer.compute_rabc_weights import _build_subsample_indices
    from lerobot.rewards.robometer.processor_robometer import RobometerEncoderProcessorStep

    config = RewardModelConfig.from_pretrained(checkpoint)
    model = RobometerRewardModel.from_pretrained(checkpoint, config=config)
    encoder = RobometerEncoderProcessorStep(
        base_model_id=config.base_model_id, image_key=config.image_key, max_frames=k
    )
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # uint8: the encoder keeps the values as they are
    subsamples = _build_subsample_indices(len(frames), k)
    rewards = []
    for start in range(0, len(frames), 5):
        batch = torch.stack([video[s] for s in subsamples[start : start + 5]])
        transition = {
            TransitionKey.OBSERVATION: {config.image_key: batch},
            TransitionKey.COMPLEMENTARY_DATA: {"task": task},
        }
        observation = encoder(transition)[TransitionKey.OBSERVATION]
        rewards.append(model.compute_reward(observation).numpy())
    return np.concatenate(rewards)


# ---- parity with lerobot ---------------------------------------------------------------------------
def test_labels_equal_lerobots_compute_path_on_the_same_frames(checkpoint, dataset):
    model = rewardkit.load(checkpoint)
    assert type(model) is RewardkitRobometerRewardModel
    inputs = episode_inputs(dataset)
    ours = model.label_episode(inputs)
    reference = lerobot_progress(checkpoint, inputs.frames(CAMERA), inputs.task)
    np.testing.assert_allclose(ours["progress"], reference, atol=1e-4)
    assert np.ptp(ours["progress"]) > 1e-4  # the frames matter: the equality could fail
    assert ours["success_prob"].shape == (inputs.length,)
    assert ((ours["success_prob"] > 0) & (ours["success_prob"] < 1)).all()


def test_labels_equal_lerobots_dataset_labeller(checkpoint, dataset, tiny_dataset, tmp_path, monkeypatch):
    """lerobot's whole labeller (`compute_robometer_progress`: frames read through `LeRobotDataset`, one
    item at a time) on the same episode gives our labels."""
    import lerobot.rewards.robometer.compute_rabc_weights as lerobot_labeller
    from lerobot.configs.rewards import RewardModelConfig
    from lerobot.datasets import LeRobotDataset

    root = tiny_dataset[0]
    # lerobot's labeller builds a default config (fetching the base model's config from the hub) and opens
    # the dataset from the hub cache: give it the checkpoint's config and the local dataset.
    monkeypatch.setattr(
        lerobot_labeller, "RobometerConfig", lambda **kw: RewardModelConfig.from_pretrained(checkpoint)
    )
    monkeypatch.setattr(
        lerobot_labeller, "LeRobotDataset", lambda repo_id, **kw: LeRobotDataset(repo_id, root=root)
    )
    out = lerobot_labeller.compute_robometer_progress(
        dataset.meta.repo_id,
        str(checkpoint),
        output_path=str(tmp_path / "lerobot.parquet"),
        device="cpu",
        batch_size=8,
        episodes=[EPISODE],
        image_key=CAMERA,
    )
    theirs = pq.read_table(out).column("progress_sparse").to_numpy()
    ours = rewardkit.load(checkpoint).label_episode(episode_inputs(dataset))["progress"]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


# ---- save / load -----------------------------------------------------------------------------------
def test_every_way_in_gives_the_same_model(checkpoint, dataset, tmp_path):
    """A lerobot checkpoint through rewardkit.load, the named model (with options), our own save and load."""
    inputs = episode_inputs(dataset, frame_indices=np.array([0, 5, 23]))
    reference = rewardkit.load(checkpoint)
    expected = reference.label_episode(inputs)
    named = rewardkit.load(f"robometer:{checkpoint}", label_batch_size=2, online_every=3)
    assert named.config.label_batch_size == 2 and named.config.online_every == 3
    reference.save_pretrained(tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["type"] == "rewardkit_robometer"
    for way, model in {
        "named": named,
        "rewardkit.load(ours)": rewardkit.load(tmp_path / "ours"),
        "from_pretrained(ours)": RewardkitRobometerRewardModel.from_pretrained(tmp_path / "ours"),
    }.items():
        assert type(model) is RewardkitRobometerRewardModel and not model.training, way
        got = model.label_episode(inputs)
        for key in ("progress", "success_prob"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=f"{way}: {key}")
    # fewer frames per query is another model of progress: the option is honoured
    fewer = load_robometer(checkpoint, frames_per_query=2).label_episode(inputs)["progress"]
    assert np.abs(fewer - expected["progress"]).max() > 1e-6


# ---- online ----------------------------------------------------------------------------------------
def test_online_scores_every_kth_step_and_holds_between(checkpoint, dataset, monkeypatch):
    model = rewardkit.load(checkpoint)
    inputs = episode_inputs(dataset)
    labels = model.label_episode(inputs)
    frames = inputs.frames(CAMERA)
    calls = []
    score = model.score_queries
    monkeypatch.setattr(
        model, "score_queries", lambda clips, task: calls.append(len(clips)) or score(clips, task)
    )
    monitor = RewardMonitor(model, fps=dataset.fps, every=4)
    steps = [monitor.step({CAMERA: frame, "task": inputs.task}) for frame in frames]
    scored = np.arange(0, len(frames), 4)
    assert len(calls) == len(scored)  # one query per scored step, none between
    progress = np.array([s.progress for s in steps])
    np.testing.assert_allclose(progress[scored], labels["progress"][scored], atol=1e-4)
    held = np.repeat(progress[scored], 4)[: len(frames)]
    np.testing.assert_array_equal(progress, held)
    np.testing.assert_allclose(
        [s.success_prob for s in steps][::4], labels["success_prob"][scored], atol=1e-4
    )


# ---- errors ----------------------------------------------------------------------------------------
def test_a_folder_that_is_not_a_robometer_is_refused_by_name(checkpoint, tmp_path):
    qwen = Path(json.loads((checkpoint / "config.json").read_text())["base_model_id"])
    # the bare Qwen3-VL folder: a transformers config, no reward-model type
    with pytest.raises(RewardkitError, match="no 'type' field"):
        rewardkit.load(f"robometer:{qwen}")
    # another reward model's checkpoint
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"type": "sarm"}))
    with pytest.raises(RewardkitError, match="'sarm' checkpoint, not a Robometer"):
        load_robometer(other)
    with pytest.raises(RewardkitError, match="not found"):
        rewardkit.load(f"robometer:{tmp_path / 'missing'}")


def test_a_backbone_that_is_not_a_qwen3_vl_is_refused(checkpoint, dataset, tmp_path):
    def edited(name, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(checkpoint, folder)
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    llava = edited("llava", lambda c: c["vlm_config"].update(model_type="llava"))
    with pytest.raises(RewardkitError, match="'llava', not a Qwen3-VL"):
        rewardkit.load(llava)
    code = edited("code", lambda c: c["vlm_config"].update(auto_map={"AutoModel": "evil.Model"}))
    with pytest.raises(RewardkitError, match="auto_map"):
        rewardkit.load(code)
    # no vlm_config: lerobot's config fills it from base_model_id's config, which must be a Qwen3-VL's
    filled = edited("filled", lambda c: c.update(vlm_config={}))
    inputs = episode_inputs(dataset, frame_indices=np.array([2, 9]))
    np.testing.assert_allclose(
        rewardkit.load(filled).label_episode(inputs)["progress"],
        rewardkit.load(checkpoint).label_episode(inputs)["progress"],
        atol=1e-6,
    )
    not_qwen = tmp_path / "not_qwen"
    shutil.copytree(Path(json.loads((checkpoint / "config.json").read_text())["base_model_id"]), not_qwen)
    (not_qwen / "config.json").write_text(json.dumps({"model_type": "llava"}))
    base = edited("base", lambda c: c.update(vlm_config={}, base_model_id=str(not_qwen)))
    with pytest.raises(RewardkitError, match="'llava', not a Qwen3-VL"):
        rewardkit.load(base)


def test_a_processor_that_is_not_a_qwen3_vl_or_carries_code_is_refused(checkpoint, dataset, tmp_path):
    inputs = episode_inputs(dataset, frame_indices=np.array([3]))
    qwen = Path(json.loads((checkpoint / "config.json").read_text())["base_model_id"])
    hostile = tmp_path / "hostile"
    shutil.copytree(qwen, hostile)
    config = json.loads((hostile / "processor_config.json").read_text())
    config["auto_map"] = {"AutoProcessor": "processing_evil.EvilProcessor"}
    (hostile / "processor_config.json").write_text(json.dumps(config))
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((hostile, "auto_map"), (empty, "not a Qwen3-VL processor folder")):
        model = load_robometer(checkpoint, processor_path=str(folder))
        with pytest.raises(RewardkitError, match=message):
            model.label_episode(inputs)


def test_bad_options_and_inputs_are_clear_errors(checkpoint, dataset):
    with pytest.raises(RewardkitError, match="unknown Robometer option"):
        rewardkit.load(f"robometer:{checkpoint}", frames_per_querry=3)
    with pytest.raises(RewardkitError, match="frames_per_query must be in 1..max_frames"):
        load_robometer(checkpoint, frames_per_query=9)
    model = load_robometer(checkpoint)
    inputs = episode_inputs(dataset)
    no_task = EpisodeInputs(0, "", inputs.length, inputs.fps, frames=inputs.frames)
    with pytest.raises(RewardkitError, match="episode 0 has no task text"):
        model.label_episode(no_task)
    grey = EpisodeInputs(0, "t", inputs.length, inputs.fps, frames=lambda c: np.zeros((inputs.length, 8, 8)))
    with pytest.raises(RewardkitError, match="expected uint8"):
        model.label_episode(grey)


# ---- the command line ------------------------------------------------------------------------------
def test_label_command_with_the_named_model(checkpoint, tiny_dataset, tmp_path):
    out = tmp_path / "progress.parquet"
    argv = [
        "label",
        f"--dataset.root={tiny_dataset[0]}",
        "--model.type=robometer",
        f"--model.vlm={checkpoint}",
        "--model.options={label_batch_size: 16}",
        "--stride=4",
        f"--output={out}",
    ]
    assert main(argv) == 0
    table = pq.read_table(out).to_pandas()
    episode = table[table.episode_index == EPISODE].sort_values("frame_index")
    expected = load_robometer(checkpoint).label_episode(
        episode_inputs(open_dataset(root=tiny_dataset[0]), frame_indices=np.arange(0, 24, 4))
    )["progress"]
    np.testing.assert_allclose(episode.progress_sparse.to_numpy()[::4], expected, atol=1e-4)


def test_loading_skips_the_random_initialisation_that_the_weights_overwrite(checkpoint, dataset, monkeypatch):
    """lerobot's constructor randomly initialises the whole Qwen3-VL before its weights are read (minutes for
    the 4B); ours does not, and gives the same outputs as lerobot's model (the parity tests)."""
    from lerobot.rewards.robometer import RobometerRewardModel

    calls = []
    normal = torch.nn.init.normal_
    monkeypatch.setattr(torch.nn.init, "normal_", lambda *a, **k: calls.append(1) or normal(*a, **k))
    reference = RobometerRewardModel.from_pretrained(checkpoint)
    assert calls, "lerobot's load initialises the weights (the spy must see it)"
    calls.clear()
    model = rewardkit.load(checkpoint)
    assert not calls
    # every weight and buffer is the checkpoint's, as in lerobot's normally initialised build
    ours, theirs = model.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert torch.equal(tensor, ours[name]), name
    for (name, buffer), (_, other) in zip(model.named_buffers(), reference.named_buffers(), strict=True):
        assert torch.equal(buffer, other), name


def test_each_distinct_frame_of_a_batch_goes_through_the_image_processor_once(checkpoint, dataset):
    """Frame 0 is in every query and round(t/3), round(2t/3) repeat over consecutive t: the image processor
    runs once per distinct frame of a batch (the parity tests show the outputs are lerobot's)."""
    model = load_robometer(checkpoint, label_batch_size=8)
    inputs = episode_inputs(dataset)
    model.label_episode(inputs)
    length = inputs.length
    distinct = sum(
        len({int(i) for t in range(start, min(start + 8, length)) for i in model.query_positions(t)})
        for start in range(0, length, 8)
    )
    calls = model.encoder._processor.image_processor.calls
    assert 0 < calls <= distinct < 4 * length  # lerobot processes 4 * length images


def test_labelling_does_not_log_a_warning_per_frame(checkpoint, dataset, caplog):
    model = load_robometer(checkpoint)
    with caplog.at_level("WARNING"):
        model.label_episode(episode_inputs(dataset, frame_indices=np.arange(6)))
    assert not [r for r in caplog.records if "Kwargs passed" in r.getMessage()]
