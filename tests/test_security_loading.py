"""Loading a checkpoint never runs code: hostile processor JSONs are refused before anything is called.

A RewACT checkpoint folder holds `policy_preprocessor.json` / `policy_postprocessor.json`; lerobot's own
loader imports any class a step names (`"class": "os.system"`) and builds registered steps that load other
checkpoints with `trust_remote_code`. Each hostile file here would create a marker file if its code ran:
every entry point must refuse it with an error naming the file, the step and the name, and the marker
must not exist.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.utils.constants import ACTION, OBS_STATE

import rewardkit
from rewardkit.models.base import CheckpointError, EpisodeInputs
from rewardkit.models.rewact import RewACTConfig, RewACTPolicy
from rewardkit.models.rewact.processor_rewact import make_rewact_pre_post_processors
from rewardkit.models.safe_processors import load_processor_pipeline

STATE_DIM, ACTION_DIM, CAMERA, SIZE = 4, 3, "observation.images.top", 32
PRE, POST = "policy_preprocessor.json", "policy_postprocessor.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny RewACT checkpoint as lerobot-train saves it: config, weights, both processors."""
    config = RewACTConfig(
        input_features={
            OBS_STATE: PolicyFeature(FeatureType.STATE, (STATE_DIM,)),
            CAMERA: PolicyFeature(FeatureType.VISUAL, (3, SIZE, SIZE)),
        },
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))},
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=4,
        chunk_size=3,
        n_action_steps=3,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    torch.manual_seed(0)
    policy = RewACTPolicy(config)
    stats = {
        OBS_STATE: {"mean": torch.full((STATE_DIM,), 0.5), "std": torch.full((STATE_DIM,), 2.0)},
        ACTION: {"mean": torch.zeros(ACTION_DIM), "std": torch.ones(ACTION_DIM)},
        CAMERA: {"mean": torch.full((3, 1, 1), 0.4), "std": torch.full((3, 1, 1), 0.25)},
    }
    preprocessor, postprocessor = make_rewact_pre_post_processors(config, dataset_stats=stats)
    folder = tmp_path_factory.mktemp("rewact") / "ckpt"
    policy.save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    postprocessor.save_pretrained(folder)
    return folder


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint, folder)
    return folder


def _insert_step(folder: Path, filename: str, step: dict, position: int = 1) -> None:
    path = folder / filename
    data = json.loads(path.read_text())
    data["steps"].insert(position, step)
    path.write_text(json.dumps(data))


def _evil_code_folder(folder: Path, marker: Path) -> None:
    """A transformers "remote code" processor whose module creates `marker` when imported."""
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\nclass EvilProcessor:\n    pass\n"
    )
    auto_map = {"auto_map": {"AutoProcessor": "evil.EvilProcessor"}, "processor_class": "EvilProcessor"}
    (folder / "processor_config.json").write_text(json.dumps(auto_map))
    (folder / "preprocessor_config.json").write_text(json.dumps(auto_map))


def _hostile_steps(folder: Path, marker: Path) -> dict[str, tuple[str, dict, str]]:
    """name -> (processor file, hostile step, the name the error must quote)."""
    return {
        "os.system": (PRE, {"class": "os.system", "config": {"command": f"touch {marker}"}}, "os.system"),
        "subprocess.Popen": (
            POST,
            {"class": "subprocess.Popen", "config": {"args": ["touch", str(marker)]}},
            "subprocess.Popen",
        ),
        # Both keys: lerobot resolves the registered name and ignores "class"; we refuse the file.
        "registry+class": (
            PRE,
            {
                "registry_name": "device_processor",
                "class": "os.system",
                "config": {"command": f"touch {marker}"},
            },
            "os.system",
        ),
        # A registered lerobot step that loads a processor with trust_remote_code=True (its default).
        "registered remote code": (
            PRE,
            {"registry_name": "action_tokenizer_processor", "config": {"action_tokenizer_name": str(folder)}},
            "action_tokenizer_processor",
        ),
    }


HOSTILE = ["os.system", "subprocess.Popen", "registry+class", "registered remote code"]
ENTRY_POINTS = {
    "rewardkit.load": rewardkit.load,
    "RewACTPolicy.from_pretrained": RewACTPolicy.from_pretrained,
}


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_processor_json_is_refused_and_runs_nothing(checkpoint, tmp_path, hostile, entry_point):
    folder = _copy(checkpoint, tmp_path)
    marker = tmp_path / "MARKER"
    _evil_code_folder(folder, marker)
    filename, step, name = _hostile_steps(folder, marker)[hostile]
    _insert_step(folder, filename, step, position=1)
    with pytest.raises(CheckpointError) as error:
        ENTRY_POINTS[entry_point](folder)
    message = str(error.value)
    assert str(folder / filename) in message and "step 1" in message and name in message
    assert not marker.exists()


def test_the_evil_fixture_would_run_code_through_lerobot_loader(checkpoint, tmp_path):
    # The check above can fail: lerobot's own loader does run the registered step's remote code.
    from lerobot.processor import PolicyProcessorPipeline

    folder = _copy(checkpoint, tmp_path)
    marker = tmp_path / "MARKER"
    _evil_code_folder(folder, marker)
    _, step, _ = _hostile_steps(folder, marker)["registered remote code"]
    _insert_step(folder, PRE, step)
    with pytest.raises(ValueError):  # EvilProcessor is not a real processor: after its import ran
        PolicyProcessorPipeline.from_pretrained(str(folder), config_filename=PRE)
    assert marker.exists()


@pytest.mark.parametrize(
    "state_file", ["../stats.safetensors", "stats.pt", "/etc/passwd", ".hidden.safetensors"]
)
def test_state_files_are_safetensors_names_inside_the_folder(checkpoint, tmp_path, state_file):
    folder = _copy(checkpoint, tmp_path)
    path = folder / PRE
    data = json.loads(path.read_text())
    stateful = next(i for i, step in enumerate(data["steps"]) if "state_file" in step)
    data["steps"][stateful]["state_file"] = state_file
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"step {stateful}.*state file"):
        rewardkit.load(folder)


def test_unknown_registered_step_and_bad_structure_are_named(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    _insert_step(folder, PRE, {"registry_name": "tokenizer_processor", "config": {"tokenizer_name": "x"}}, 0)
    with pytest.raises(CheckpointError, match="step 0 names the processor step 'tokenizer_processor'"):
        rewardkit.load(folder)
    (folder / PRE).write_text(json.dumps({"steps": "os.system"}))
    with pytest.raises(CheckpointError, match="not a lerobot processor config"):
        rewardkit.load(folder)


def test_fine_tuning_from_a_hostile_checkpoint_is_refused_before_lerobot_reads_it(checkpoint, tmp_path):
    from rewardkit.commands.train import main
    from rewardkit.models.safe_processors import check_policy_path

    folder = _copy(checkpoint, tmp_path)
    args = [f"--policy.path={folder}", "--steps=1"]
    assert check_policy_path(args) == args
    assert check_policy_path(["--policy.path", str(folder)]) == ["--policy.path", str(folder)]
    marker = tmp_path / "MARKER"
    _insert_step(folder, POST, {"class": "os.system", "config": {"command": f"touch {marker}"}})
    for bad in ([f"--policy.path={folder}"], ["--steps=1", "--policy.path", str(folder)]):
        with pytest.raises(CheckpointError, match="step 1 names the class 'os.system'"):
            check_policy_path(bad)
    # `rewardkit train --model.type=rewact --model.path=...` refuses it before lerobot-train starts.
    with pytest.raises(CheckpointError, match=str(folder / POST)):
        main(
            ["--model.type=rewact", f"--model.path={folder}", "--steps=1", f"--output_dir={tmp_path / 'run'}"]
        )
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_both_entry_points_give_the_same_model(checkpoint):
    from_load = rewardkit.load(checkpoint)
    from_class = RewACTPolicy.from_pretrained(checkpoint)
    for model in (from_load, from_class):
        assert type(model) is RewACTPolicy and not model.training
        assert model.preprocessor is not None and model.postprocessor is not None
    for name, tensor in from_load.state_dict().items():
        torch.testing.assert_close(from_class.state_dict()[name], tensor, rtol=0, atol=0)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(11, STATE_DIM)).astype(np.float32)
    frames = rng.integers(0, 256, size=(11, SIZE, SIZE, 3), dtype=np.uint8)
    inputs = EpisodeInputs(
        episode_index=0, task="t", length=11, fps=10, state=state, frames=lambda camera: frames
    )
    progress = from_load.label_episode(inputs)["progress"]
    assert progress.shape == (11,) and np.isfinite(progress).all() and np.ptp(progress) > 0
    np.testing.assert_array_equal(from_class.label_episode(inputs)["progress"], progress)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    batch = from_load.preprocessor({OBS_STATE: torch.from_numpy(state), CAMERA: images})
    torch.testing.assert_close(
        from_class.predict_reward(batch), from_load.predict_reward(batch), rtol=0, atol=0
    )
    # The pre-processor normalises with the saved statistics (mean 0.5, std 2): the safe loader read them.
    torch.testing.assert_close(batch[OBS_STATE], (torch.from_numpy(state) - 0.5) / 2.0)
    # Actions come back through the saved post-processor (identity stats here: unchanged values).
    action = torch.randn(2, ACTION_DIM)
    torch.testing.assert_close(from_class.postprocessor(action), from_load.postprocessor(action))


def test_processor_loader_builds_lerobots_pipeline_exactly(checkpoint):
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import batch_to_transition, transition_to_batch

    ours = load_processor_pipeline(checkpoint, PRE, batch_to_transition, transition_to_batch)
    theirs = PolicyProcessorPipeline.from_pretrained(str(checkpoint), config_filename=PRE)
    assert [type(s) for s in ours.steps] == [type(s) for s in theirs.steps]
    state = torch.randn(5, STATE_DIM)
    torch.testing.assert_close(ours({OBS_STATE: state})[OBS_STATE], theirs({OBS_STATE: state})[OBS_STATE])


def test_train_policy_refuses_a_hostile_checkpoint_before_lerobot_reads_it(checkpoint, tmp_path):
    from rewardkit.rabc.training import train_policy

    folder = _copy(checkpoint, tmp_path)
    marker = tmp_path / "MARKER"
    _insert_step(folder, POST, {"class": "os.system", "config": {"command": f"touch {marker}"}})
    with pytest.raises(CheckpointError, match="step 1 names the class 'os.system'"):
        train_policy([f"--policy.path={folder}", "--steps=1", f"--output_dir={tmp_path / 'run'}"])
    assert not marker.exists() and not (tmp_path / "run").exists()
