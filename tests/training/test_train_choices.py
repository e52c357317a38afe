"""`rewardkit train`: one entry point for every model, shared flags defined once (old spellings still
parse, with a warning naming the new flag), one "open the feature cache or build it", and the user's
choices and bad values said before training starts (#14.1, #14.3, #13.5, #13.9)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rewardkit.cache import build_cache, open_or_build_cache
from rewardkit.commands.train import parse_train_config
from rewardkit.data.dataset import DatasetConfig, DatasetError, open_dataset
from rewardkit.encoders import make_encoder
from rewardkit.errors import RewardkitError
from rewardkit.models.classifier import SuccessClassifierConfig
from rewardkit.models.sarm import SARMConfig, SARMRewardModel
from rewardkit.training import train
from rewardkit.training.classifier import ClassifierTrainConfig, frozen_episode_features
from rewardkit.training.flags import find_failed_episodes, validation_split
from rewardkit.training.rewact import RewACTTrainConfig, lerobot_train_args
from rewardkit.training.sarm import SARMTrainConfig, prepare

TOP = "observation.images.top"
ENCODER = "clip-random:tiny"


def _sarm_cfg(root, tmp_path, **model) -> SARMTrainConfig:
    values = dict(
        encoder=ENCODER,
        hidden_dim=32,
        num_layers=1,
        num_heads=4,
        n_obs_steps=4,
        frame_gap=2,
        max_rewind_steps=2,
    )
    values.update(model)
    return SARMTrainConfig(
        dataset=DatasetConfig(root=str(root)),
        model=SARMConfig(**values),
        output_dir=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        num_perturbation_texts=2,
    )


def _copy(source, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(source, root)
    return root


def _poison_state(root, episode_index, frame):
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    rows = (table.column("episode_index").to_numpy() == episode_index) & (
        table.column("frame_index").to_numpy() == frame
    )
    state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
    state[rows, 0] = np.nan
    column = pa.array(list(state), type=table.schema.field("observation.state").type)
    pq.write_table(
        table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column), path
    )


# ---- one way to train ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "config_class"),
    [
        (None, SARMTrainConfig),
        ("sarm", SARMTrainConfig),
        ("rewardkit_sarm", SARMTrainConfig),
        ("classifier", ClassifierTrainConfig),
        ("rewardkit_classifier", ClassifierTrainConfig),
        ("rewact", RewACTTrainConfig),
    ],
)
def test_model_type_chooses_the_train_config(flag, config_class):
    argv = [f"--model.type={flag}"] if flag else []
    cfg = parse_train_config([*argv, "--steps=7"])
    assert type(cfg) is config_class
    if config_class is RewACTTrainConfig:
        assert cfg.args == ["--steps=7"]
    else:
        assert cfg.steps == 7


def test_unknown_model_type_and_config_are_refused():
    with pytest.raises(RewardkitError, match=r"unknown --model.type=svm; choose one of \['sarm'"):
        parse_train_config(["--model.type=svm"])
    with pytest.raises(RewardkitError, match="no training recipe takes a dict"):
        train({"steps": 1})


# ---- shared flags, old spellings -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_type", "old"),
    [
        ("classifier", "--labels.failed_episodes"),
        ("sarm", "--model.failed_episodes"),
        ("classifier", "--model.failed_episodes"),
    ],
)
def test_old_failed_episode_flags_still_parse_with_a_warning_naming_the_new_flag(model_type, old, caplog):
    with caplog.at_level(logging.WARNING):
        cfg = parse_train_config([f"--model.type={model_type}", f"{old}=[3]"])
    assert cfg.failed_episodes == [3]
    assert any(old in m and "use --failed_episodes" in m for m in caplog.messages)


def test_rewact_takes_the_shared_failed_episodes_flag(caplog):
    cfg = parse_train_config(["--model.type=rewact", "--failed_episodes=[1,2]"])
    assert "--policy.failed_episodes=[1,2]" in lerobot_train_args(cfg.args)
    with caplog.at_level(logging.WARNING):
        cfg = parse_train_config(["--model.type=rewact", "--model.failed_episodes=[4]"])
    assert "--policy.failed_episodes=[4]" in lerobot_train_args(cfg.args)
    assert any("use --failed_episodes" in m for m in caplog.messages)


# ---- the user's choices, said -------------------------------------------------------------------
def test_failed_episodes_outside_the_selection_are_named_and_ignored(tiny_dataset, caplog):
    dataset = open_dataset(root=tiny_dataset[0], episodes=[0, 1])
    cfg = SARMTrainConfig(failed_episodes=[1, 29, 30])
    with caplog.at_level(logging.WARNING):
        failed = find_failed_episodes(dataset, cfg)
    assert failed == {1: None}
    assert "episodes [29, 30] are marked failed but not in --dataset.episodes; ignored" in caplog.messages


def test_held_out_validation_episodes_are_logged(caplog):
    cfg = SARMTrainConfig(val_fraction=0.5, seed=0)
    with caplog.at_level(logging.INFO):
        train_ids, val_ids = validation_split([0, 1, 2, 3], cfg)
    assert len(val_ids) == 2 and sorted(train_ids + val_ids) == [0, 1, 2, 3]
    message = next(m for m in caplog.messages if "holding out" in m)
    assert str(val_ids) in message and "--val_fraction=0" in message and "--val_episodes" in message
    with pytest.raises(DatasetError, match=r"--val_episodes \[9\]"):
        validation_split([0, 1], SARMTrainConfig(val_episodes=[9]))


def test_nan_state_is_named_before_training_and_before_labelling(tiny_dataset, tmp_path):
    from rewardkit.labelling.labeller import label_dataset

    root = _copy(tiny_dataset[0], tmp_path)
    _poison_state(root, 2, 5)
    with pytest.raises(DatasetError, match=r"column 'observation.state'.*episode 2"):
        prepare(_sarm_cfg(root, tmp_path))
    assert not (tmp_path / "cache").exists()  # refused before the (slow) cache build
    model = SARMRewardModel(
        SARMConfig(encoder=ENCODER, hidden_dim=32, num_layers=1, num_heads=4, cameras=[TOP], image_dim=16,
                         text_dim=16, max_state_dim=8, device="cpu")
    )  # fmt: skip
    assert model.required_inputs().state
    with pytest.raises(DatasetError, match=r"column 'observation.state'.*episode 2"):
        label_dataset(model, open_dataset(root=root), show_progress=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_dataset_without_state_asks_for_use_state_false(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset[0], tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["observation.state"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="no 'observation.state' column.*--model.use_state=false"):
        prepare(_sarm_cfg(root, tmp_path))
    model, _, _ = prepare(_sarm_cfg(root, tmp_path, use_state=False))
    assert not model.config.use_state


# ---- one "open the feature cache, or build it" ---------------------------------------------------
def test_cached_features_need_no_encoder(tiny_dataset, tmp_path, monkeypatch, caplog):
    dataset = open_dataset(root=tiny_dataset[0])
    cache_dir = tmp_path / "cache"
    build_cache(dataset, make_encoder(ENCODER), [TOP], cache_dir=cache_dir, progress=False)

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder was built although every feature is cached")

    monkeypatch.setattr("rewardkit.encoders.make_encoder", no_encoder)
    with caplog.at_level(logging.INFO):
        features = frozen_episode_features(dataset, ENCODER, [TOP], [0, 2], cache_dir=str(cache_dir))
        open_or_build_cache(dataset, ENCODER, [TOP], cache_dir)
    assert features[0].shape == (20, 1, features[0].shape[-1]) and features[2].shape[0] == 16
    assert not any("building the feature cache" in m for m in caplog.messages)
    # only new texts to encode: the encoder runs, but the log does not claim a cache build
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        cache = open_or_build_cache(
            dataset, ENCODER, [TOP], cache_dir, texts=["open the drawer"], progress=False
        )
    assert "open the drawer" in cache.tasks
    assert not any("building the feature cache" in m for m in caplog.messages)
    assert any("encoding 1 new texts" in m for m in caplog.messages)


def test_classifier_frozen_training_from_a_full_cache_builds_no_encoder(
    two_camera_dataset, tmp_path, monkeypatch
):
    root = two_camera_dataset[0]
    cameras = ["observation.images.top", "observation.images.wrist"]
    dataset = open_dataset(root=root)
    build_cache(dataset, make_encoder(ENCODER), cameras, cache_dir=tmp_path / "cache", progress=False)
    built = []
    monkeypatch.setattr("rewardkit.encoders.make_encoder", lambda *a, **k: built.append(a))
    cfg = ClassifierTrainConfig(
        dataset=DatasetConfig(root=str(root)),
        model=SuccessClassifierConfig(backbone="frozen", encoder=ENCODER, hidden_dim=16, device="cpu"),
        failed_episodes=[3],
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "out"),
        steps=2,
        batch_size=8,
        progress_bar=False,
    )
    result = train(cfg)
    assert built == []
    assert result.checkpoint.is_dir() and 0.0 <= result.metrics["auroc"] <= 1.0


# ---- the frame gap is in seconds by default ------------------------------------------------------
@pytest.fixture(scope="module")
def thirty_fps_dataset(tmp_path_factory):
    from rewardkit.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("fps30") / "ds"
    make_synthetic_dataset(root, num_episodes=2, episode_length=[40, 36], fps=30, image_size=16)
    return root


@pytest.mark.parametrize(("fps", "default_gap"), [(10, 10), (30, 30)])
def test_default_frame_gap_is_one_second_at_the_datasets_fps(
    fps, default_gap, tiny_dataset, thirty_fps_dataset, tmp_path
):
    root = tiny_dataset[0] if fps == 10 else thirty_fps_dataset
    assert open_dataset(root=root).fps == fps
    cfg = _sarm_cfg(root, tmp_path, frame_gap=None)
    assert cfg.model.frame_gap is None and cfg.model.frame_gap_seconds == 1.0
    model, train_data, _ = prepare(cfg)
    assert model.config.frame_gap == default_gap
    assert train_data.config.frame_gap == default_gap  # the data windows use the same gap
    assert cfg.model.frame_gap is None  # the caller's config is unchanged
    # an explicit frame count wins over the seconds
    explicit, _, _ = prepare(_sarm_cfg(root, tmp_path, frame_gap=3))
    assert explicit.config.frame_gap == 3
    # the checkpoint keeps the resolved frame count
    model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["frame_gap"] == default_gap


def test_checkpoints_saved_before_the_seconds_default_load_unchanged(tmp_path):
    import rewardkit

    model = SARMRewardModel(
        SARMConfig(encoder=ENCODER, hidden_dim=32, num_layers=1, num_heads=4, n_obs_steps=4, frame_gap=7,
                         max_rewind_steps=2, cameras=[TOP], image_dim=16, text_dim=16, device="cpu")
    )  # fmt: skip
    model.save_pretrained(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    saved = json.loads(config_path.read_text())
    saved["frame_gap_seconds"] = None  # what checkpoints written before this change hold
    config_path.write_text(json.dumps(saved))
    assert rewardkit.load(tmp_path / "old").config.frame_gap == 7
    # built without a dataset, the 1 s default is taken at lerobot's 30 fps
    assert SARMConfig().resolved().frame_gap == 30
    assert SARMConfig(frame_gap_seconds=0.5).resolved(fps=20).frame_gap == 10
