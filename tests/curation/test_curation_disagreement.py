"""`rewardkit curate` on an ensemble's progress: each episode's mean `progress_std` is its "disagreement"
column (CSV, JSON, HTML); a progress file without the column gives the table without it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset

SPREAD = {0: 0.02, 1: 0.25, 2: 0.05}  # episode 1: the members disagree


def _progress(root, path, with_spread: bool):
    frames = []
    for info in open_dataset(root=root).episodes():
        columns = {
            "index": np.arange(info.from_index, info.to_index),
            "episode_index": info.episode_index,
            "frame_index": np.arange(info.length),
            "progress_sparse": np.linspace(0, 1, info.length, dtype=np.float32),
        }
        if with_spread:  # rising through the episode, mean SPREAD[e]
            columns["progress_std"] = np.linspace(
                0, 2 * SPREAD[info.episode_index], info.length, dtype=np.float32
            )
        frames.append(pd.DataFrame(columns))
    pd.concat(frames).to_parquet(path)
    return path


@pytest.mark.parametrize("with_spread", [True, False], ids=["ensemble", "single model"])
def test_curate_reports_each_episodes_mean_progress_std(tiny_dataset, tmp_path, with_spread):
    root, _ = tiny_dataset
    progress = _progress(root, tmp_path / "p.parquet", with_spread)
    out = tmp_path / "cur"
    assert (
        main(["curate", f"--progress_path={progress}", f"--dataset.root={root}", f"--output_dir={out}"]) == 0
    )
    table = pd.read_csv(out / "curation.csv")
    rows = json.loads((out / "curation.json").read_text())["episodes"]
    page = (out / "curation.html").read_text()
    if not with_spread:
        assert "disagreement" not in table.columns and all("disagreement" not in r for r in rows)
        assert "disagreement" not in page
        return
    assert table.columns[-1] == "disagreement"
    got = dict(zip(table["episode_index"], table["disagreement"], strict=True))
    assert got == pytest.approx(SPREAD, abs=1e-3)
    assert {r["episode_index"]: r["disagreement"] for r in rows} == pytest.approx(SPREAD, abs=1e-6)
    assert '<th class="disagreement">' in page


def test_curation_reads_the_progress_file_once(tiny_dataset, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from rewardkit.curation import curate_dataset

    root, _ = tiny_dataset
    progress = _progress(root, tmp_path / "p.parquet", with_spread=True)
    dataset = open_dataset(root=root)
    reads = []
    read_table = pq.read_table

    def counting(source, *args, **kwargs):
        reads.append(str(source))
        return read_table(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counting)
    report = curate_dataset(progress, dataset)
    assert [r for r in reads if r == str(progress)] == [str(progress)]  # progress and progress_std in one read
    got = {q.episode_index: q.disagreement for q in report.episodes}
    assert got == pytest.approx(SPREAD, abs=1e-6)
