"""A missing local path that looks like a hub id (`a/b`) gets one clear error, not a hub traceback."""

from __future__ import annotations

import pytest

from rewardkit.cli import main
from rewardkit.data.dataset import DatasetError, open_dataset
from rewardkit.models.base import CheckpointError, resolve_checkpoint


def test_missing_dataset_path_offline_says_no_folder_and_no_hub_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError) as caught:
        open_dataset(repo_id="data/mydataset")
    message = str(caught.value)
    assert "'data/mydataset'" in message and "no such folder" in message
    assert "not a hub repo" in message and "offline" in message and "--dataset.root" in message


def test_missing_dataset_root_names_the_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"no such dataset folder .*nowhere/ds \(--dataset.root\)"):
        open_dataset(root=tmp_path / "nowhere" / "ds")


def test_missing_checkpoint_path_offline_says_no_folder_and_no_hub_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        CheckpointError, match=r"checkpoint 'runs/model': no such folder .*not a hub repo.*offline"
    ):
        resolve_checkpoint("runs/model")


def test_cli_prints_the_hub_lookup_error_as_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["annotate", "export", "--dataset.repo_id=data/mydataset", "--output=x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rewardkit: error:") and "not a hub repo" in err and "\n" not in err
