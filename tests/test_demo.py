"""`rewardkit demo`, shortened (a few training steps): every output exists and its numbers are valid."""

from __future__ import annotations

import json
import math

import pytest

from rewardkit.commands import demo
from rewardkit.sim import bundled_dataset_path
from rewardkit.sim.metaworld_sim import read_ground_truth


def test_held_out_split_keeps_every_task_and_failure_kind_out_of_training():
    truth = read_ground_truth(bundled_dataset_path())
    kinds = {i: (g.task, g.kind) for i, g in truth.items()}
    split = demo.held_out_split(kinds)
    assert not set(split.train) & set(split.held_out)
    assert sorted(split.train + split.held_out) == sorted(kinds)
    held_kinds = {kinds[i] for i in split.held_out}
    all_kinds = set(kinds.values())
    assert held_kinds == all_kinds  # every (task, kind) is represented in the held-out set
    held_success = [i for i in split.held_out if kinds[i][1] == "success"]
    assert len(held_success) == 8  # every 4th of 16 successes, two tasks
    assert set(split.train_failed) == {i for i in split.train if kinds[i][1] != "success"}


def _valid_metric(value, low=-1.0, high=1.0):
    return value is not None and math.isfinite(value) and low <= value <= high


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    argv = [
        "--steps=4",
        "--rewact_steps=2",
        "--batch_size=8",
        f"--output_dir={out / 'demo'}",
        f"--cache_dir={out / 'cache'}",
    ]
    assert demo.main(argv) == 0
    return out / "demo"


def test_demo_writes_report_plots_video_and_summary(demo_run, capsys):
    summary = json.loads((demo_run / "demo.json").read_text())
    assert summary["encoder"] == "clip-random:tiny"
    for key in ("report", "eval_json", "video"):
        path = summary[key]
        assert (demo_run / path).exists() or __import__("pathlib").Path(path).exists(), key
    assert any((demo_run / "plots").glob("*.png"))
    assert summary["video"].endswith(".mp4")
    html = (demo_run / "report.html").read_text() if (demo_run / "report.html").exists() else ""
    assert "SARM" in html
    assert set(summary["headline"]) >= {"SARM", "RewACT (short run)"}
    assert summary["skipped"] == []


def test_demo_numbers_are_valid(demo_run):
    summary = json.loads((demo_run / "demo.json").read_text())
    for name, numbers in summary["headline"].items():
        if "constant" in name:  # a constant prediction has no rank correlation
            continue
        assert _valid_metric(numbers["voc_success"]), (name, numbers)
        assert _valid_metric(numbers["mae"], 0.0, 1.0), (name, numbers)
        assert _valid_metric(numbers["auroc"], 0.0, 1.0), (name, numbers)
    evaluation = json.loads((demo_run / "eval.json").read_text())
    assert "SARM" in json.dumps(evaluation)
    held_out = summary["held_out_episodes"]
    assert not set(held_out) & set(summary["train_episodes"])
    assert isinstance(summary["meets_targets"], bool)
