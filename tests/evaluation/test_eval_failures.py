"""Failures in `rewardkit eval`: per-kind breakdown, failure MAE only against known progress, failure frames."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from toy_reward_models import save_toy

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.evaluation import ELAPSED_BASELINE, EpisodeTruth, evaluate_models, ground_truth_from_dataset
from rewardkit.evaluation.evaluate import (
    ASSUMED_RAMP,
    NO_FAILURE_PROGRESS_NOTE,
    evaluate_predictions,
    failure_breakdown,
    success_failure_margin,
)


def test_margin_and_breakdown_by_hand():
    assert success_failure_margin(
        np.array([0.9, 0.8, 0.3, 0.5]), np.array([1, 1, 0, 0], bool)
    ) == pytest.approx(0.3)
    assert success_failure_margin(np.array([0.4, 0.6]), np.array([1, 0], bool)) == pytest.approx(-0.2)
    assert success_failure_margin(np.array([0.4]), np.array([True])) is None
    rows = [
        {"episode_index": 0, "success": True, "final_progress": 0.9, "mae": 0.1, "mae_reached": None},
        {"episode_index": 1, "success": True, "final_progress": 0.7, "mae": 0.1, "mae_reached": None},
        {"episode_index": 2, "success": False, "final_progress": 0.8, "mae": 0.4, "mae_reached": 0.2},
        {"episode_index": 3, "success": False, "final_progress": 0.1, "mae": None, "mae_reached": None},
        {"episode_index": 4, "success": False, "final_progress": 0.2, "mae": 0.3, "mae_reached": 0.1},
    ]
    kinds = failure_breakdown(rows, {2: "drop", 3: "stall", 4: "stall", 0: "success", 1: "success"})
    assert sorted(kinds) == ["drop", "stall"]  # successes are not a failure group
    # drop (0.8) against successes (0.9, 0.7): 1 of 2 pairs ranked right -> 0.5; margin 0.7 - 0.8
    assert kinds["drop"]["final_progress_auroc"] == 0.5 and kinds["drop"]["margin"] == pytest.approx(-0.1)
    assert kinds["stall"]["final_progress_auroc"] == 1.0 and kinds["stall"]["margin"] == pytest.approx(0.5)
    assert kinds["stall"]["mae_failure"] == pytest.approx(0.3) and kinds["stall"]["num_scored"] == 1
    assert kinds["stall"]["final_progress_mean"] == pytest.approx(0.15)
    assert kinds["drop"]["mae_failure_reached"] == pytest.approx(0.2)


def test_a_failure_with_an_assumed_ramp_is_not_scored_and_the_summary_says_so():
    ramp = np.linspace(0.05, 0.9, 5).astype(np.float32)
    truths = {
        0: EpisodeTruth(0, 5, True, np.linspace(0, 1, 5), kind="success"),
        1: EpisodeTruth(1, 5, False, ramp, kind="drop", progress_source=ASSUMED_RAMP),
    }
    results = evaluate_models({}, truths)
    time_only = results[ELAPSED_BASELINE]["summary"]
    # Before: the elapsed-time baseline scored a small failure MAE against the ramp it resembles.
    assert time_only["mae_failure"] is None and time_only["num_failed_scored"] == 0
    assert time_only["failure_mae_note"] == NO_FAILURE_PROGRESS_NOTE
    assert time_only["mae_success"] is not None
    assert results[ELAPSED_BASELINE]["episodes"][1]["mae"] is None
    # With the true progress known, the same failure is scored, and against its reached progress too.
    truths[1] = EpisodeTruth(1, 5, False, np.array([0, 0.3, 0.6, 0.1, 0.0]), kind="drop",
                             progress_reached=np.array([0, 0.3, 0.6, 0.6, 0.6]))  # fmt: skip
    summary = evaluate_predictions({i: {"progress": np.linspace(0, 1, 5)} for i in truths}, truths)["summary"]
    assert summary["mae_failure"] == pytest.approx((0 + 0.05 + 0.1 + 0.65 + 1.0) / 5)
    assert summary["mae_failure_reached"] == pytest.approx((0 + 0.05 + 0.1 + 0.15 + 0.4) / 5)
    assert summary["failure_mae_note"] is None and summary["by_kind"]["drop"]["num_episodes"] == 1


def _copy_with_episode_columns(root, tmp_path, columns: dict[str, dict[int, object]]):
    """A copy of a dataset whose meta/episodes parquet files get extra per-episode columns."""
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    for path in sorted((copy / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        indices = table["episode_index"].to_pylist()
        for name, values in columns.items():
            table = table.append_column(name, pa.array([values.get(i) for i in indices]))
        pq.write_table(table, path)
    return copy


def test_failure_frames_given_directly_frame_zero_included(two_camera_dataset, tmp_path):
    root, truths = two_camera_dataset
    dataset = open_dataset(root=root)
    gt = ground_truth_from_dataset(dataset, failure_frames={3: 5, 1: 0})
    assert [gt[i].success for i in range(4)] == [True, False, True, False]
    assert gt[1].progress_source == "failure frame" and (gt[1].progress == 0).all()  # failed at frame 0
    assert (gt[3].progress[5:] == 0).all() and gt[3].progress[4] > 0
    # Without a frame, episode 3 (failed by the list) has no known progress.
    assert ground_truth_from_dataset(dataset, failed_episodes=[3])[3].progress_source == ASSUMED_RAMP
    with pytest.raises(ValueError, match="failure frame 30 of episode 3 is outside its 24 frames"):
        ground_truth_from_dataset(dataset, failure_frames={3: 30})
    copy = _copy_with_episode_columns(root, tmp_path, {"failed_at": {2: 0, 3: -1}})
    gt = ground_truth_from_dataset(open_dataset(root=copy), failure_frame_column="failed_at")
    assert [gt[i].success for i in range(4)] == [True, True, False, True]
    assert (gt[2].progress == 0).all()


def test_eval_cli_breaks_down_by_kind_and_scores_failures_only_with_known_progress(
    two_camera_dataset, tmp_path, capsys
):
    root, _ = two_camera_dataset
    copy = _copy_with_episode_columns(
        root, tmp_path, {"kind": {0: "success", 1: "drop", 2: "success", 3: "stall"}}
    )
    model = save_toy(tmp_path / "m")
    base = ["eval", f"--dataset.root={copy}", f"--models=[{model}]", "--names=[toy]", "--episode_plots=0"]
    assert main([*base, "--kind_column=kind", f"--output_dir={tmp_path / 'a'}"]) == 0
    out = capsys.readouterr().out
    assert "  drop (1): AUROC" in out and "  stall (1): AUROC" in out
    assert f"note: {NO_FAILURE_PROGRESS_NOTE}" in out
    summary = json.loads((tmp_path / "a" / "eval.json").read_text())["models"]["toy"]["summary"]
    assert summary["num_failed"] == 2 and summary["mae_failure"] is None
    assert sorted(summary["by_kind"]) == ["drop", "stall"]
    html = (tmp_path / "a" / "report.html").read_text()
    assert "By failure kind" in html and NO_FAILURE_PROGRESS_NOTE in html

    assert (
        main([*base, "--kind_column=kind", "--failure_frames={1: 0, 3: 7}", f"--output_dir={tmp_path / 'b'}"])
        == 0
    )
    assert "note:" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "b" / "eval.json").read_text())["models"]["toy"]["summary"]
    assert summary["num_failed_scored"] == 2 and summary["by_kind"]["drop"]["mae_failure"] is not None

    assert main([*base, "--failure_frames={3: 99}", f"--output_dir={tmp_path / 'c'}"]) == 2
    assert "outside its 24 frames" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("metaworld") is None, reason="metaworld/mujoco not installed (rewardkit[sim])"
)
def test_a_sim_dataset_gives_kinds_and_ground_truth_progress(tmp_path):
    from rewardkit.sim.metaworld_sim import record_metaworld_dataset

    root = tmp_path / "sim"
    record_metaworld_dataset(root, tasks=["pick-place-v3"], num_success=1, num_failed=2, image_size=16,
                             frame_stride=4, failure_kinds=["drop", "grasp_air"], progress=False)  # fmt: skip
    gt = ground_truth_from_dataset(open_dataset(root=root))
    assert [(gt[i].success, gt[i].kind) for i in range(3)] == [
        (True, "success"),
        (False, "drop"),
        (False, "grasp_air"),
    ]
    for truth in gt.values():
        column = open_dataset(root=root).read_columns(truth.episode_index, ["ground_truth.progress"])
        np.testing.assert_array_equal(truth.progress, column["ground_truth.progress"].reshape(-1))
        assert truth.progress_source == "ground truth"
        np.testing.assert_array_equal(truth.progress_reached, np.maximum.accumulate(truth.progress))
    summary = evaluate_models({}, gt)[ELAPSED_BASELINE]["summary"]
    assert summary["num_failed_scored"] == 2 and set(summary["by_kind"]) == {"drop", "grasp_air"}
    # Time ends at 1 on every episode: no separation, and a large error on the failure that got nowhere.
    assert summary["by_kind"]["grasp_air"]["final_progress_auroc"] == 0.5
    assert summary["by_kind"]["grasp_air"]["mae_failure"] > 0.2
