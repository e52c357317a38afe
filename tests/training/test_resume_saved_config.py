"""`rewardkit train --resume` of a SARM run continues with the run's own model config (the checkpoint's
config.json), not today's defaults: a run saved with frame_tokens="separate" (as every run before "fused"
became the default) resumes without `--model.frame_tokens=separate`; a flag the user sets still wins."""

from __future__ import annotations

import json

import pytest

from rewardkit.cli import main
from rewardkit.models.sarm import SARMRewardModel

TINY_MODEL = [
    "--model.encoder=clip-random:tiny",
    "--model.hidden_dim=32",
    "--model.num_layers=1",
    "--model.num_heads=4",
    "--model.n_obs_steps=4",
    "--model.frame_gap=2",
    "--model.max_rewind_steps=2",
]


def _run(root, tmp_path, steps: int, *flags: str) -> list[str]:
    return [
        "train",
        f"--dataset.root={root}",
        f"--output_dir={tmp_path / 'run'}",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--steps={steps}",
        "--batch_size=4",
        "--save_every=2",
        "--val_fraction=0",
        "--num_perturbation_texts=2",
        "--progress_bar=false",
        *flags,
    ]


def _saved(tmp_path) -> dict:
    return json.loads((tmp_path / "run/checkpoints/last/pretrained_model/config.json").read_text())


@pytest.fixture
def separate_run(tiny_dataset, tmp_path):
    """A 2-step run saved with frame_tokens="separate" and dropout 0.2 (not the defaults)."""
    root = tiny_dataset[0]
    flags = [*TINY_MODEL, "--model.frame_tokens=separate", "--model.dropout=0.2"]
    assert main(_run(root, tmp_path, 2, *flags)) == 0
    assert _saved(tmp_path)["frame_tokens"] == "separate"
    return root


@pytest.mark.parametrize("model_flags", [TINY_MODEL, []], ids=["same command", "no model flags"])
def test_resume_keeps_the_saved_frame_tokens_without_the_flag(separate_run, tmp_path, model_flags):
    assert main(_run(separate_run, tmp_path, 4, *model_flags, "--resume=true")) == 0
    saved = _saved(tmp_path)
    assert saved["frame_tokens"] == "separate" and saved["dropout"] == 0.2
    assert saved["hidden_dim"] == 32 and saved["num_layers"] == 1  # the run's size, not today's default
    assert json.loads((tmp_path / "run/checkpoints/last/training_state/training_step.json").read_text()) == {
        "step": 4
    }
    model = SARMRewardModel.from_pretrained(tmp_path / "run/checkpoints/last/pretrained_model")
    assert model.config.frame_tokens == "separate"


def test_resume_of_a_run_saved_before_frame_tokens_existed_keeps_separate(separate_run, tmp_path):
    config = tmp_path / "run/checkpoints/last/pretrained_model/config.json"
    fields = json.loads(config.read_text())
    del fields["frame_tokens"]  # as a checkpoint written before the field existed
    config.write_text(json.dumps(fields))
    assert main(_run(separate_run, tmp_path, 4, "--resume=true")) == 0
    assert _saved(tmp_path)["frame_tokens"] == "separate"


def test_a_flag_given_on_resume_still_wins(separate_run, tmp_path):
    assert main(_run(separate_run, tmp_path, 4, "--model.dropout=0.05", "--resume=true")) == 0
    saved = _saved(tmp_path)
    assert saved["dropout"] == 0.05 and saved["frame_tokens"] == "separate"


def test_resume_without_a_checkpoint_is_refused_before_training(tiny_dataset, tmp_path, capsys):
    assert main(_run(tiny_dataset[0], tmp_path, 2, *TINY_MODEL, "--resume=true")) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before the feature cache was built
