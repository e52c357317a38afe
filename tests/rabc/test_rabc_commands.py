"""`rewardkit train-policy` (lerobot's loop, weighted ACT, 2 steps offline) and `rewardkit weights`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_act import TINY_ACT_TRAIN_FLAGS

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset


@pytest.fixture(scope="module")
def tiny_progress(tiny_dataset, tmp_path_factory):
    """A progress parquet for `tiny_dataset` from its ground truth; episode 1 goes backwards after frame 12."""
    root, truths = tiny_dataset
    frames = []
    for info, truth in zip(open_dataset(root=root).episodes(), truths, strict=True):
        progress = np.asarray(truth.progress, dtype=np.float32).copy()
        if info.episode_index == 1:
            progress[12:] = progress[12:][::-1]
        frames.append(
            pd.DataFrame(
                {
                    "index": np.arange(info.from_index, info.to_index),
                    "episode_index": info.episode_index,
                    "frame_index": np.arange(info.length),
                    "progress_sparse": progress,
                }
            )
        )
    path = tmp_path_factory.mktemp("rabc") / "sarm_progress.parquet"
    pd.concat(frames).to_parquet(path)
    return path


def test_weights_command_writes_summary_plot_and_frame_weights(tiny_progress, tmp_path, capsys):
    out = tmp_path / "weights"
    args = [
        "weights",
        f"--progress_path={tiny_progress}",
        "--chunk_size=5",
        "--kappa=0.02",
        f"--output_dir={out}",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "suggested --sample_weighting.kappa=" in printed
    report = json.loads((out / "weights.json").read_text())
    episodes = {e["episode_index"]: e for e in report["episodes"]}
    assert sorted(episodes) == [0, 1, 2] and report["overall"]["num_frames"] == 60
    assert episodes[1]["zero_share"] > 0.2 and episodes[0]["zero_share"] == 0.0
    assert (out / "weights.png").read_bytes()[:4] == b"\x89PNG"
    frame_weights = pd.read_parquet(out / "frame_weights.parquet")
    assert len(frame_weights) == 60 and frame_weights["weight"].between(0, 1).all()
    assert main(["weights", f"--progress_path={tmp_path / 'nope.parquet'}"]) == 2
    assert "not found" in capsys.readouterr().err


def test_train_policy_uploads_only_when_asked():
    from rewardkit.errors import RewardkitError
    from rewardkit.rabc.training import lerobot_train_argv

    assert lerobot_train_argv(["--policy.type=act"]) == ["--policy.type=act", "--policy.push_to_hub=false"]
    asked = ["--policy.type=act", "--policy.push_to_hub=true", "--policy.repo_id=me/act"]
    assert lerobot_train_argv(asked) == asked
    assert lerobot_train_argv(["--policy.push_to_hub", "false"]) == ["--policy.push_to_hub", "false"]
    with pytest.raises(RewardkitError, match="--policy.repo_id"):
        lerobot_train_argv(["--policy.type=act", "--policy.push_to_hub=true"])


def test_train_policy_trains_weighted_act_two_steps_offline(tiny_dataset, tiny_progress, tmp_path, capsys):
    # No --policy.push_to_hub: lerobot's default (upload, so "repo_id argument missing") must not apply.
    root, _ = tiny_dataset
    args = [
        "train-policy",
        *TINY_ACT_TRAIN_FLAGS,
        f"--dataset.root={root}",
        "--log_freq=1",
        f"--output_dir={tmp_path / 'run'}",
        "--sample_weighting.type=rabc",
        f"--sample_weighting.progress_path={tiny_progress}",
        "--sample_weighting.kappa=0.02",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "RA-BC weights over 60 frames" in printed
    assert "suggested --sample_weighting.kappa=" in printed
