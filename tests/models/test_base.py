"""The reward-model base: registry, strict save/load, clear errors, lerobot's plugin path."""

import json
from dataclasses import dataclass

import pytest
import torch
from lerobot.configs.rewards import RewardModelConfig
from torch import nn

import rewardkit
from rewardkit.models.base import CheckpointError, RewardKitConfig, RewardKitModel


@RewardModelConfig.register_subclass("rewardkit_test_tiny")
@dataclass
class TinyProgressConfig(RewardKitConfig):
    """A two-layer progress regressor over a state vector (test-only model).

    Args:
        state_dim: size of the input state.
        hidden: hidden width.
    """

    state_dim: int = 4
    hidden: int = 8


class TinyProgressRewardModel(RewardKitModel):
    config_class = TinyProgressConfig
    name = "rewardkit_test_tiny"

    def __init__(self, config: TinyProgressConfig, **kwargs):
        super().__init__(config)
        self.net = nn.Sequential(
            nn.Linear(config.state_dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1)
        )

    def predict_progress(self, batch):
        return torch.sigmoid(self.net(batch["observation.state"])).squeeze(-1)


def _saved(tmp_path, **cfg):
    torch.manual_seed(0)
    model = TinyProgressRewardModel(TinyProgressConfig(device="cpu", **cfg))
    model.save_pretrained(tmp_path / "ckpt")
    return model, tmp_path / "ckpt"


def test_save_writes_config_and_safetensors_and_load_round_trips(tmp_path):
    model, path = _saved(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((path / "config.json").read_text())["type"] == "rewardkit_test_tiny"
    loaded = rewardkit.load(path)
    assert isinstance(loaded, TinyProgressRewardModel)
    assert not loaded.training
    x = {"observation.state": torch.randn(5, 4)}
    torch.testing.assert_close(loaded.predict_progress(x), model.predict_progress(x))
    p = loaded.predict_progress(x)
    assert p.shape == (5,) and bool(((p >= 0) & (p <= 1)).all())


def test_no_temporary_files_left_after_save(tmp_path):
    _saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_missing_key_is_an_error_not_a_warning(tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = _saved(tmp_path)
    state = load_file(path / "model.safetensors")
    state.pop("net.2.bias")
    save_file(state, path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \['net.2.bias'\]"):
        rewardkit.load(path)


def test_unexpected_key_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = _saved(tmp_path)
    state = load_file(path / "model.safetensors")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra.weight'\]"):
        rewardkit.load(path)


def test_shape_mismatch_names_the_tensor(tmp_path):
    _, path = _saved(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["hidden"] = 16
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"shape of 'net\.0\.(weight|bias)' is .*3 mismatched tensors"):
        rewardkit.load(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    _, path = _saved(tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated weights file .*model.safetensors"):
        rewardkit.load(path)


def test_corrupt_config_and_missing_files(tmp_path):
    _, path = _saved(tmp_path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt .*config.json"):
        rewardkit.load(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing .*config.json"):
        rewardkit.load(path)
    with pytest.raises(CheckpointError, match="not found"):
        rewardkit.load(tmp_path / "nowhere")


def test_unknown_type_and_other_model_type_are_refused(tmp_path):
    _, path = _saved(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "type": "not_a_model"}))
    with pytest.raises(CheckpointError, match="'not_a_model', which is not a known reward model"):
        rewardkit.load(path)
    # a lerobot classifier config loaded through a rewardkit class
    from lerobot.rewards.classifier.configuration_classifier import RewardClassifierConfig

    other = tmp_path / "other"
    other.mkdir()
    RewardClassifierConfig(device="cpu")._save_pretrained(other)
    with pytest.raises(
        CheckpointError, match="is a 'reward_classifier' checkpoint, not 'rewardkit_test_tiny'"
    ):
        TinyProgressRewardModel.from_pretrained(other)


def test_builds_through_lerobots_make_reward_model(tmp_path):
    from lerobot.rewards import make_reward_model, make_reward_model_config

    cfg = make_reward_model_config("rewardkit_test_tiny", device="cpu", state_dim=3)
    model = make_reward_model(cfg)
    assert isinstance(model, TinyProgressRewardModel)
    assert model.net[0].in_features == 3
    model.save_pretrained(tmp_path / "m")
    cfg.pretrained_path = str(tmp_path / "m")
    again = make_reward_model(cfg)
    x = {"observation.state": torch.randn(2, 3)}
    torch.testing.assert_close(again.predict_progress(x), model.predict_progress(x))


def test_push_to_hub_only_when_asked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(TinyProgressRewardModel, "push_to_hub", lambda self, **kw: calls.append(kw))
    model, _ = _saved(tmp_path)
    model.save_pretrained(tmp_path / "again")
    assert calls == []
    model.save_pretrained(tmp_path / "again", push_to_hub=True, repo_id="me/tiny")
    assert calls and calls[0]["repo_id"] == "me/tiny"


def test_named_models_load_from_a_spec_with_options_and_a_folder_wins(tmp_path, monkeypatch):
    """`rewardkit.load("<name>[:<argument>]", **options)` builds a registered named model (zero-shot
    VLMs, wrapped lerobot models); an existing folder of that name is still a checkpoint."""
    from rewardkit.cli_utils import ModelConfig
    from rewardkit.models import base

    built = []

    def builder(argument, hidden=8):
        built.append((argument, hidden))
        return TinyProgressRewardModel(TinyProgressConfig(device="cpu", hidden=hidden))

    monkeypatch.setitem(base._NAMED_MODELS, "tiny_named", builder)
    model = rewardkit.load("tiny_named:some/vlm", hidden=4)
    assert isinstance(model, TinyProgressRewardModel) and not model.training
    assert built == [("some/vlm", 4)]
    rewardkit.load("tiny_named")
    assert built[-1] == (None, 8)
    # the CLI's --model.type/--model.vlm/--model.options reach the same builder
    ModelConfig(type="tiny_named", vlm="other/vlm", options={"hidden": 2}).load()
    assert built[-1] == ("other/vlm", 2)
    with pytest.raises(ValueError, match="not both"):
        ModelConfig(type="tiny_named", path="x").load()
    # options make no sense for a checkpoint: refused, naming them
    _, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"\['hidden'\]"):
        rewardkit.load(path, hidden=3)
    # a local folder called like a named model is a checkpoint, not the named model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").rename(tmp_path / "tiny_named")
    count = len(built)
    assert isinstance(rewardkit.load("tiny_named"), TinyProgressRewardModel) and len(built) == count
