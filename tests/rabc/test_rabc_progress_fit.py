"""RA-BC refuses progress files that do not fit the dataset (#13.4): episode boundaries, the labeller's
fingerprint, all-NaN progress; some NaN is a warning naming the frames and episodes. Also `weights`
never replaces earlier outputs without `--overwrite=true` (#13.3)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from tiny_act import TINY_ACT_TRAIN_FLAGS

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.errors import RewardkitError
from rewardkit.labelling import EpisodeLabels, dataset_fingerprint, write_progress_parquet
from rewardkit.rabc import RABCWeighter


@pytest.fixture()
def own_copy(tiny_dataset, tmp_path):
    """A private copy of the tiny dataset (3 episodes of 20, 24, 16 frames)."""
    root, _ = tiny_dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    return copy


def _labels(root, lengths=None, values=None) -> list[EpisodeLabels]:
    """Linear progress for `root`'s episodes, with other episode `lengths` (same total) when given."""
    episodes = open_dataset(root=root).episodes()
    lengths = lengths or [e.length for e in episodes]
    labels, start = [], 0
    for info, length in zip(episodes, lengths, strict=True):
        progress = np.linspace(0, 1, length, dtype=np.float32) if values is None else values(info, length)
        labels.append(EpisodeLabels(info.episode_index, start, {"progress": progress}))
        start += length
    return labels


def _write(path, labels, fingerprint=None):
    return write_progress_parquet(path, labels, "toy", {"dataset": fingerprint} if fingerprint else None)


def test_other_episode_boundaries_with_the_same_frame_count_are_refused(own_copy, tmp_path, capsys):
    path = _write(tmp_path / "p.parquet", _labels(own_copy, lengths=[21, 23, 16]))  # 60 frames, like the data
    dataset = open_dataset(root=own_copy)
    with pytest.raises(RewardkitError, match="episode 0 has 21 frames from index 0.*20 frames") as error:
        RABCWeighter.from_file(path, chunk_size=5, dataset=dataset)
    assert str(path) in str(error.value)
    # Without a dataset only the file itself is read: this is what the old code did for every run.
    assert RABCWeighter.from_file(path, chunk_size=5).num_frames == 60
    assert main(["weights", f"--progress_path={path}", f"--dataset.root={own_copy}", "--chunk_size=5"]) == 2
    assert "does not fit this dataset" in capsys.readouterr().err


def test_file_beside_the_dataset_is_checked_against_it_by_default(own_copy, capsys):
    path = _write(own_copy / "sarm_progress.parquet", _labels(own_copy, lengths=[20, 16, 24]))
    assert main(["weights", f"--progress_path={path}", "--chunk_size=5"]) == 2
    assert "episode 1 has 16 frames" in capsys.readouterr().err
    assert not (own_copy / "sarm_progress_weights").exists()


def test_episodes_the_dataset_lacks_are_refused(own_copy, tmp_path):
    labels = _labels(own_copy)
    labels.append(EpisodeLabels(7, 60, {"progress": np.linspace(0, 1, 5, dtype=np.float32)}))
    path = _write(tmp_path / "p.parquet", labels)
    with pytest.raises(RewardkitError, match=r"episode\(s\) 7 that .* does not have"):
        RABCWeighter.from_file(path, chunk_size=5, dataset=open_dataset(root=own_copy))


def test_fingerprint_of_another_dataset_is_refused(own_copy, tmp_path):
    dataset = open_dataset(root=own_copy)
    other = {**dataset_fingerprint(dataset), "repo_id": "me/other", "episodes_sha256": "0" * 64}
    path = _write(tmp_path / "p.parquet", _labels(own_copy), other)
    with pytest.raises(RewardkitError, match="labelled from another dataset \\(me/other"):
        RABCWeighter.from_file(path, chunk_size=5, dataset=dataset)
    same = _write(tmp_path / "same.parquet", _labels(own_copy), dataset_fingerprint(dataset))
    weighter = RABCWeighter.from_file(same, chunk_size=5, dataset=open_dataset(root=own_copy, episodes=[2]))
    assert weighter.num_frames == 60


def test_all_nan_progress_is_an_error(own_copy, tmp_path, capsys):
    nan = _labels(own_copy, values=lambda info, n: np.full(n, np.nan, dtype=np.float32))
    path = _write(tmp_path / "p.parquet", nan)
    with pytest.raises(RewardkitError, match="NaN on every frame"):
        RABCWeighter.from_file(path, chunk_size=5)
    assert main(["weights", f"--progress_path={path}", "--chunk_size=5"]) == 2
    assert "NaN on every frame" in capsys.readouterr().err


def test_some_nan_progress_warns_with_frames_and_episodes(own_copy, tmp_path, caplog):
    def values(info, n):
        progress = np.linspace(0, 1, n, dtype=np.float32)
        if info.episode_index in (0, 2):
            progress[:3] = np.nan
        return progress

    path = _write(tmp_path / "p.parquet", _labels(own_copy, values=values))
    with caplog.at_level(logging.WARNING, logger="rewardkit"):
        weighter = RABCWeighter.from_file(path, chunk_size=5, dataset=open_dataset(root=own_copy))
    assert weighter.num_frames == 60
    assert "NaN on 6 of 60 frames, in episode(s) 0, 2" in caplog.text


def test_train_policy_refuses_a_file_that_does_not_fit_before_training(own_copy, tmp_path, capsys):
    path = _write(tmp_path / "p.parquet", _labels(own_copy, lengths=[21, 23, 16]))
    args = [
        "train-policy",
        *TINY_ACT_TRAIN_FLAGS,
        f"--dataset.root={own_copy}",
        f"--output_dir={tmp_path / 'run'}",
        "--sample_weighting.type=rabc",
        f"--sample_weighting.progress_path={path}",
    ]
    assert main(args) == 2
    assert "does not fit this dataset" in capsys.readouterr().err


def test_weights_never_replaces_earlier_outputs_unless_asked(own_copy, tmp_path, capsys):
    path = _write(tmp_path / "p.parquet", _labels(own_copy))
    out = tmp_path / "weights"
    base = [
        "weights",
        f"--progress_path={path}",
        f"--dataset.root={own_copy}",
        "--chunk_size=5",
        f"--output_dir={out}",
    ]
    assert main(base) == 0
    before = {
        name: (out / name).read_bytes() for name in ("weights.json", "weights.png", "frame_weights.parquet")
    }
    assert main([*base, "--kappa=0.5"]) == 2
    error = capsys.readouterr().err
    assert str(out / "weights.json") in error and "--overwrite=true" in error
    assert {name: (out / name).read_bytes() for name in before} == before
    assert main([*base, "--kappa=0.5", "--overwrite=true"]) == 0
    assert json.loads((out / "weights.json").read_bytes())["kappa"] == 0.5
    assert pd.read_parquet(out / "frame_weights.parquet").shape[0] == 60
