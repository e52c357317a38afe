"""`rewardkit demo`, shortened (a few training steps): every output exists and its numbers are valid."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import pytest

from rewardkit import demo
from rewardkit.commands import demo as demo_command
from rewardkit.sim import bundled_dataset_path
from rewardkit.sim.metaworld_sim import read_ground_truth
from rewardkit.training.rewact import lerobot_info_logs_hidden


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
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert demo_command.main(argv) == 0
    (out / "demo" / "printed.txt").write_text(printed.getvalue())
    return out / "demo"


def test_demo_output_is_not_flooded_by_lerobot_info_logs(demo_run):
    printed = (demo_run / "printed.txt").read_text()
    assert "Creating dataset" not in printed  # lerobot's INFO lines (config dump, per-step metrics)
    assert "'policy':" not in printed
    assert "held-out episodes:" in printed and "VOC(success)" in printed  # the demo's own summary
    assert f"{demo.REWACT_NAME}: ACT from scratch" in printed  # its note, without the old caveat
    assert "pipeline check" not in printed


def test_lerobot_logging_is_restored_after_the_rewact_run():
    from lerobot.scripts import lerobot_train

    root = logging.getLogger()
    handler = logging.NullHandler()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    try:
        original = lerobot_train.init_logging
        with lerobot_info_logs_hidden():
            lerobot_train.init_logging()  # what lerobot's train() does first
            consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
            assert consoles and all(h.level == logging.WARNING for h in consoles)
        assert lerobot_train.init_logging is original
        assert root.handlers == [handler] and root.level == logging.WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_demo_writes_report_plots_video_and_summary(demo_run, capsys):
    summary = json.loads((demo_run / "demo.json").read_text())
    assert summary["encoder"] == "clip-random:tiny"
    for key in ("report", "eval_json", "video"):
        path = summary[key]
        assert (demo_run / path).exists() or Path(path).exists(), key
    assert any((demo_run / "plots").glob("*.png"))
    assert summary["video"].endswith(".mp4")
    html = (demo_run / "report.html").read_text() if (demo_run / "report.html").exists() else ""
    assert "SARM" in html
    assert set(summary["headline"]) >= {"SARM", demo.REWACT_NAME}
    assert summary["skipped"] == []
    assert "2 steps" in summary["notes"][demo.REWACT_NAME]  # the note says how long it trained


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


def test_demo_never_deletes_training_folders_it_did_not_make(tmp_path):
    mine = tmp_path / "out" / "sarm"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("not the demo's")
    with pytest.raises(SystemExit, match="not from an earlier demo run"):
        demo_command.main(
            [f"--output_dir={tmp_path / 'out'}", f"--cache_dir={tmp_path / 'cache'}", "--steps=1"]
        )
    assert (mine / "keep.txt").read_text() == "not the demo's"


def test_demo_ends_with_the_curation_table_and_the_calibrated_threshold(demo_run):
    summary = json.loads((demo_run / "demo.json").read_text())
    table = summary["curation"]["table"]
    assert sorted(row["episode"] for row in table) == sorted(summary["held_out_episodes"])
    assert {row["verdict"] for row in table} <= {"keep", "look", "drop"}
    assert {row["failed"] for row in table} == {True, False}
    for path in summary["curation"]["files"].values():
        assert Path(path).is_file()
    calibration = json.loads(Path(summary["calibration"]["path"]).read_text())
    assert 0.0 <= calibration["complete_threshold"] <= 1.0
    assert Path(summary["calibration"]["path"]).parent == Path(summary["checkpoints"]["SARM"])
    printed = (demo_run / "printed.txt").read_text()
    assert (
        "curation of the held-out episodes" in printed
        and "calibrated completion: complete_threshold" in printed
    )
