"""RewACT trains through lerobot's own pipeline: `lerobot-train --policy.type=rewact` (the installed
`lerobot_policy_rewact` plugin) and `rewardkit train --model.type=rewact` (training.rewact.train_rewact)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rewardkit
from rewardkit.commands.train import main
from rewardkit.models.rewact import RewACTPolicy
from rewardkit.training.rewact import lerobot_train_args

TINY_FLAGS = [
    "dim_model=32",
    "n_heads=2",
    "dim_feedforward=64",
    "n_encoder_layers=1",
    "n_vae_encoder_layers=1",
    "chunk_size=5",
    "n_action_steps=5",
    "pretrained_backbone_weights=null",
    "device=cpu",
]


def common_flags(root: Path, output_dir: Path) -> list[str]:
    return [
        "--dataset.repo_id=local/tiny",
        f"--dataset.root={root}",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        "--log_freq=1",
        "--wandb.enable=false",
        f"--output_dir={output_dir}",
    ]


def test_lerobot_train_runs_rewact_offline_through_the_plugin(tiny_dataset, tmp_path):
    lerobot_train = shutil.which("lerobot-train", path=str(Path(sys.executable).parent))
    assert lerobot_train, "lerobot-train is not installed in this environment"
    root, _ = tiny_dataset
    output_dir = tmp_path / "run"
    args = [lerobot_train, "--policy.type=rewact", "--policy.push_to_hub=false"]
    args += [f"--policy.{flag}" for flag in TINY_FLAGS] + common_flags(root, output_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reward_loss" in result.stderr + result.stdout
    checkpoint = output_dir / "checkpoints" / "last" / "pretrained_model"
    model = rewardkit.load(checkpoint)
    assert isinstance(model, RewACTPolicy) and model.preprocessor is not None


def test_rewardkit_train_dispatches_to_lerobot_training(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    output_dir = tmp_path / "run"
    argv = ["--model.type=rewact", "--model.reward_head=distributional", "--model.reward_num_bins=5"]
    argv += [f"--model.{flag}" for flag in TINY_FLAGS] + common_flags(root, output_dir)
    assert main(argv) == 0
    model = rewardkit.load(output_dir / "checkpoints" / "last" / "pretrained_model")
    assert model.config.reward_head == "distributional" and model.reward_head[-1].out_features == 5
    assert not model.config.push_to_hub


def test_flag_translation():
    # where each failed episode failed: RewACT keeps the frames in its config, beside the episodes
    assert lerobot_train_args(["--failed_episodes=[3,5]", "--failure_frames=[7,0]"])[:2] == [
        "--policy.failed_episodes=[3,5]",
        "--policy.failure_frames=[7,0]",
    ]
    assert lerobot_train_args(["--model.type=rewact", "--steps=3"]) == [
        "--policy.type=rewact",
        "--steps=3",
        "--policy.push_to_hub=false",
    ]
    assert lerobot_train_args(["--model.path=ckpt", "--model.push_to_hub=true"]) == [
        "--policy.path=ckpt",
        "--policy.push_to_hub=true",
    ]
    assert lerobot_train_args(["--dataset.root=x"])[-2:] == [
        "--policy.type=rewact",
        "--policy.push_to_hub=false",
    ]


@pytest.mark.parametrize("bad", [["--model.reward_head=gaussian"]])
def test_bad_flags_fail_clearly(tiny_dataset, tmp_path, bad):
    root, _ = tiny_dataset
    argv = ["--model.type=rewact", *bad] + common_flags(root, tmp_path / "run")
    with pytest.raises((ValueError, SystemExit)):
        main(argv)
    assert not np.any([p.name == "checkpoints" for p in tmp_path.glob("run/*")])


def test_output_dir_is_chosen_as_lerobot_would_and_known():
    import datetime

    from rewardkit.training.rewact import with_output_dir

    now = datetime.datetime(2026, 12, 1, 17, 5, 9)
    args = lerobot_train_args(["--dataset.root=x", "--steps=3"])
    assert with_output_dir(args, now)[-1] == "--output_dir=outputs/train/2026-12-01/17-05-09_rewact"
    assert with_output_dir([*args, "--job_name=pick"], now)[-1].endswith("17-05-09_pick")
    given = [*args, "--output_dir=out/x"]
    assert with_output_dir(given, now) == given  # the user's folder wins
    resumed = ["--config_path=out/x/checkpoints/last/pretrained_model/train_config.json", "--resume=true"]
    assert with_output_dir(resumed, now) == resumed  # lerobot resumes in the checkpoint's own folder
