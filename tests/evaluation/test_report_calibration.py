"""The evaluation report shows a calibration's completion ROC and chosen point when one is given."""

from __future__ import annotations

import json

import numpy as np

from rewardkit.evaluation.report import write_report
from rewardkit.online.calibration import calibrate


def test_report_shows_the_roc_and_the_chosen_point(tmp_path):
    calibration = calibrate(
        {0: np.full(10, 0.95), 1: np.full(10, 0.9), 2: np.full(10, 0.2), 3: np.full(10, 0.6)},
        {0: True, 1: True, 2: False, 3: False},
        fps=10,
        hold_frames=[1, 3],
    )
    summary = {"num_episodes": 0, "num_failed": 0}
    json_path, html_path = write_report(
        tmp_path / "with", {"m": {"summary": summary, "episodes": []}}, calibration=calibration
    )
    page = html_path.read_text()
    assert "Success detection (calibration)" in page and "completion ROC" in page
    assert f"complete_threshold {calibration.complete_threshold:.3f}" in page  # 0.750, halfway 0.6-0.9
    assert page.count("data:image/png;base64,") == 1
    saved = json.loads(json_path.read_text())["calibration"]
    assert saved["complete_threshold"] == calibration.complete_threshold == 0.75
    assert saved["roc"]["threshold"][0] is None  # +inf, JSON-safe
    _, plain = write_report(tmp_path / "without", {"m": {"summary": summary, "episodes": []}})
    assert "Success detection" not in plain.read_text()
