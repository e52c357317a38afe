import json
import subprocess
import sys

from rewardkit.cli import available_commands, main


def test_info_lists_episodes_as_json(tiny_dataset, capsys):
    root, truths = tiny_dataset
    assert main(["info", f"--dataset.root={root}", "--json=true"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["length"] for e in out["episodes"]] == [t.length for t in truths]
    assert out["cameras"] == ["observation.images.top"]


def test_bad_dataset_is_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["info", f"--dataset.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "error: not a LeRobot dataset: missing" in err and str(tmp_path) in err


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_every_command_has_help():
    for name in available_commands():
        result = subprocess.run(
            [sys.executable, "-m", "rewardkit.cli", name, "--help"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (name, result.stderr[-2000:])
        assert "usage" in result.stdout.lower(), name
