"""`rewardkit curate` on a tiny dataset: the table, the keep list, the weights and a filtered dataset made
with lerobot's tools, which holds exactly the kept episodes while the source stays byte-identical."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset


def _tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def progress_with_a_failure(tiny_dataset, tmp_path):
    """Episodes 0 and 2 rise to 1; episode 1 stops at 0.3 (a failed demonstration)."""
    root, _ = tiny_dataset
    frames = []
    for info in open_dataset(root=root).episodes():
        top = 0.3 if info.episode_index == 1 else 1.0
        frames.append(
            pd.DataFrame(
                {
                    "index": np.arange(info.from_index, info.to_index),
                    "episode_index": info.episode_index,
                    "frame_index": np.arange(info.length),
                    "progress_sparse": np.linspace(0, top, info.length, dtype=np.float32),
                }
            )
        )
    path = tmp_path / "sarm_progress.parquet"
    pd.concat(frames).to_parquet(path)
    return path


def test_curate_writes_table_keep_list_weights_and_a_filtered_dataset(
    tiny_dataset, progress_with_a_failure, tmp_path, capsys
):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from rewardkit.rabc.frame_weights import read_weights_parquet

    root, _ = tiny_dataset
    before = _tree_digest(root)
    out, keep, filtered, weights = (tmp_path / n for n in ("cur", "keep.json", "filtered", "w.parquet"))
    args = [
        "curate",
        f"--progress_path={progress_with_a_failure}",
        f"--dataset.root={root}",
        f"--output_dir={out}",
        f"--keep_list={keep}",
        f"--filtered_output={filtered}",
        f"--weights_output={weights}",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 keep, 0 look, 1 drop" in printed
    table = pd.read_csv(out / "curation.csv")
    assert table["episode_index"].tolist()[0] == 1 and table["verdict"].tolist() == ["drop", "keep", "keep"]
    assert table["reason"][0] == "failed: final progress 0.29 < 0.5"  # median of the last 3 frames
    summary = json.loads((out / "curation.json").read_text())
    assert summary["counts"] == {"keep": 2, "look": 0, "drop": 1}
    page = (out / "curation.html").read_text()
    assert "data:image/png;base64," in page and "episode 1: drop" in page
    assert json.loads(keep.read_text()) == [0, 2]

    frame_weights = read_weights_parquet(weights)
    assert frame_weights.provenance["source"] == "curation"
    expected = np.r_[np.ones(20), np.zeros(24), np.ones(16)]
    np.testing.assert_array_equal(frame_weights.weight, expected)

    assert _tree_digest(root) == before  # the source is only read
    new = LeRobotDataset(repo_id="local/tiny_curated", root=filtered)
    assert new.meta.total_episodes == 2 and new.meta.total_frames == 36
    source = LeRobotDataset(repo_id="local/tiny", root=root)
    for new_episode, old_episode in ((0, 0), (1, 2)):
        new_rows = new.hf_dataset.filter(lambda r, e=new_episode: r["episode_index"] == e)
        old_rows = source.hf_dataset.filter(lambda r, e=old_episode: r["episode_index"] == e)
        np.testing.assert_allclose(
            np.stack(new_rows["observation.state"]), np.stack(old_rows["observation.state"])
        )

    # every output refuses to be replaced without --overwrite=true, before any work
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite=true"]) == 0
    assert LeRobotDataset(repo_id="local/tiny_curated", root=filtered).meta.total_episodes == 2
    assert _tree_digest(root) == before


def test_curate_refuses_a_progress_file_of_another_dataset(tiny_dataset, tmp_path, capsys):
    root, _ = tiny_dataset
    path = tmp_path / "other.parquet"
    pd.DataFrame(
        {"index": np.arange(5), "episode_index": 7, "frame_index": np.arange(5), "progress_sparse": 0.5}
    ).to_parquet(path)
    assert (
        main(
            ["curate", f"--progress_path={path}", f"--dataset.root={root}", f"--output_dir={tmp_path / 'o'}"]
        )
        == 2
    )
    assert "episode(s) 7" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
