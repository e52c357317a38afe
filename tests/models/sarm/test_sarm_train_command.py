"""`rewardkit train --model.type=sarm` end to end on a fixture dataset (cache built on the way)."""

from __future__ import annotations

import shutil

import numpy as np

import rewardkit
from rewardkit.cache import FeatureCache
from rewardkit.cli_utils import run_command
from rewardkit.commands import train
from rewardkit.data import annotations as io
from rewardkit.models.base import EpisodeInputs
from rewardkit.training.sarm import episode_targets

TINY = [
    "--model.encoder=clip-random:tiny",
    "--model.hidden_dim=32",
    "--model.num_layers=1",
    "--model.num_heads=4",
    "--model.n_obs_steps=4",
    "--model.max_rewind_steps=2",
    "--steps=3",
    "--batch_size=4",
    "--progress_bar=false",
    "--val_every=0",
]


def test_train_single_stage_then_label(tiny_dataset, tmp_path):
    root, truths = tiny_dataset
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    code = run_command(
        train.main,
        [
            "--model.type=sarm",
            f"--dataset.root={root}",
            f"--output_dir={out}",
            f"--cache_dir={cache_dir}",
            "--model.frame_gap_seconds=0.2",
            *TINY,
        ],
    )
    assert code == 0
    model = rewardkit.load(out / "checkpoints" / "last" / "pretrained_model")
    assert model.config.frame_gap == 2  # 0.2 s at 10 fps
    assert model.config.window == "causal" and model.config.cameras == ["observation.images.top"]
    cache = FeatureCache.for_dataset(
        rewardkit_dataset(root), model.config.encoder, model.config.cameras, cache_dir=cache_dir
    )
    camera = model.config.cameras[0]
    labels = model.label_episode(
        EpisodeInputs(
            0,
            truths[0].task,
            truths[0].length,
            10,
            image_features={camera: cache.episode_features(0, camera)},
            text_features=cache.text_features(truths[0].task),
        )
    )
    assert labels["progress"].shape == (truths[0].length,)
    assert ((labels["progress"] >= 0) & (labels["progress"] <= 1)).all()


def rewardkit_dataset(root):
    from rewardkit.data.dataset import open_dataset

    return open_dataset(root=root)


def test_mode_needing_annotations_fails_before_training(tiny_dataset, tmp_path, capsys):
    root, _ = tiny_dataset
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    code = run_command(
        train.main,
        [
            "--model.type=sarm",
            f"--dataset.root={root}",
            f"--output_dir={out}",
            f"--cache_dir={cache_dir}",
            "--model.annotation_mode=dual",
            *TINY,
        ],
    )
    assert code == 2
    assert "needs sparse subtask annotations" in capsys.readouterr().err
    assert not out.exists() and not cache_dir.exists()  # nothing built, nothing trained


def test_dual_mode_trains_from_dataset_annotations_with_a_failed_episode(tiny_dataset, tmp_path):
    source, truths = tiny_dataset
    root = tmp_path / "ds"
    shutil.copytree(source, root)  # annotations are written into a copy, never the shared fixture
    sparse = {
        t.episode_index: io.SubtaskAnnotation(
            ["reach", "push"], [0, t.length // 2], [t.length // 2 - 1, t.length - 1]
        )
        for t in truths
    }
    dense = {
        t.episode_index: io.SubtaskAnnotation(["a", "b", "c"], [0, 5, 10], [4, 9, t.length - 1])
        for t in truths
    }
    io.write_annotations(root, "sparse", sparse)
    io.write_annotations(root, "dense", dense)
    out = tmp_path / "out"
    code = run_command(
        train.main,
        [
            "--model.type=sarm",
            f"--dataset.root={root}",
            f"--output_dir={out}",
            f"--cache_dir={tmp_path / 'cache'}",
            "--model.annotation_mode=dual",
            "--failed_episodes=[2]",
            "--model.frame_gap=2",
            *TINY,
        ],
    )
    assert code == 0
    model = rewardkit.load(out / "checkpoints" / "last" / "pretrained_model")
    assert model.config.sparse_subtask_names == ["reach", "push"]
    assert model.config.dense_subtask_names == ["a", "b", "c"]
    assert abs(sum(model.config.dense_temporal_proportions) - 1) < 1e-6


def test_failed_episode_targets_never_finish():
    stage, tau = episode_targets(
        30,
        (["x", "y"], np.array([0, 15]), np.array([14, 29])),
        ["x", "y"],
        [0.5, 0.5],
        failed=True,
        fail_frame=25,
    )
    from rewardkit.data.targets import normalized_progress

    progress = normalized_progress(stage, tau, [0.5, 0.5])
    assert progress.max() < 1.0 and (progress[25:] == 0).all() and progress[24] > 0.5
    ok_stage, ok_tau = episode_targets(30, None, ["task"], [1.0], failed=False)
    assert ok_tau[-1] == 1.0 and (ok_stage == 0).all()
