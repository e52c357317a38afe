import json

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


def test_every_command_has_help(capsys):
    """`rewardkit <command> --help` prints usage and exits 0 for every command (in-process: one import)."""
    commands = available_commands()
    assert {
        "info",
        "cache",
        "train",
        "label",
        "eval",
        "viz",
        "annotate",
        "weights",
        "train-policy",
        "sim",
        "demo",
    } <= set(commands)
    for name in commands:
        try:
            code = main([name, "--help"])
        except SystemExit as e:  # draccus/argparse exit after printing help
            code = e.code
        out = capsys.readouterr().out
        assert code in (0, None), name
        assert "usage" in out.lower(), name


def test_a_bug_keeps_its_traceback_while_bad_input_is_one_line(capsys):
    """Only RewardkitError (bad input) becomes a one-line exit 2; any other ValueError is a bug and
    propagates with its traceback (before, every ValueError was swallowed into one line)."""
    import pytest

    from rewardkit.cli_utils import run_command
    from rewardkit.errors import RewardkitError

    def user_error(argv):
        raise RewardkitError("the flag --x names no file")

    def bug(argv):
        raise ValueError("internal shape mismatch")

    assert run_command(user_error, []) == 2
    assert "error: the flag --x names no file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="internal shape mismatch"):
        run_command(bug, [])


def test_help_shows_every_flag_with_its_default_and_documentation(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--steps int  (default: 20000)" in out
    assert "--batch_size int  (default: 64)" in out
    assert "--model.hidden_dim int  (default: 768)" in out
    assert "Optimizer steps in total" in out  # the field's text from the docstring's Args
    assert "--dataset.root str | None  (default: None)" in out


def test_renamed_flags_still_work_for_one_release_with_a_deprecation_message(tiny_dataset, tmp_path, caplog):
    """`--progress` (a parquet path) became `--progress_path`, `--head_mode` became `--head`: the old
    spellings still parse, with a warning naming the new flag."""
    import pytest

    from rewardkit.cli_utils import parse_config
    from rewardkit.commands.weights import WeightsConfig

    with pytest.warns(DeprecationWarning, match="--progress is deprecated.*use --progress_path"):
        cfg = parse_config(
            WeightsConfig, ["--progress=p.parquet", "--head_mode", "dense"], "weights",
            renamed={"--progress": "--progress_path", "--head_mode": "--head"},
        )  # fmt: skip
    assert cfg.progress_path == "p.parquet" and cfg.head == "dense"
    assert "use --head" in caplog.text
    # the new names parse without a warning, and a flag that merely starts like an old one is untouched
    cfg = parse_config(
        WeightsConfig, ["--progress_path=q.parquet"], "weights", renamed={"--progress": "--progress_path"}
    )
    assert cfg.progress_path == "q.parquet"
