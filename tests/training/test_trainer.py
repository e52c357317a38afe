"""The generic trainer: any `forward(batch) -> (loss, logs)` model, exact resume, checkpoint files."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import torch
from lerobot.configs.rewards import RewardModelConfig
from torch import nn

from rewardkit.models.base import RewardKitConfig, RewardKitModel, load_weights
from rewardkit.training import Trainer, TrainingConfig, split_episodes


@RewardModelConfig.register_subclass("rewardkit_test_regressor")
@dataclass
class _RegressorConfig(RewardKitConfig):
    def get_optimizer_preset(self):
        return None

    def get_scheduler_preset(self):
        return None

    def validate_features(self):
        pass

    @property
    def observation_delta_indices(self):
        return None

    @property
    def action_delta_indices(self):
        return None

    @property
    def reward_delta_indices(self):
        return None


class _Regressor(RewardKitModel):
    """progress = sigmoid(MLP(x)) with dropout, so the torch RNG matters for exact resume."""

    config_class = _RegressorConfig
    name = "test_regressor"

    def __init__(self, config):
        super().__init__(config)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, batch):
        progress = torch.sigmoid(self.net(batch["x"]).squeeze(-1))
        loss = nn.functional.mse_loss(progress, batch["progress"])
        error = (progress - batch["progress"]).detach()
        return loss, {"loss": float(loss.detach()), "progress_mae": float(error.abs().mean())}


class _Samples(torch.utils.data.Dataset):
    def __init__(self, n=50, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.sigmoid(self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0]))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "progress": self.y[i]}


def _config(**overrides):
    values = dict(
        steps=12,
        batch_size=8,
        lr=1e-2,
        warmup_steps=3,
        save_every=5,
        val_every=4,
        val_batches=0,
        log_every=100,
        progress_bar=False,
        seed=7,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def _trainer(tmp_path, **overrides):
    torch.manual_seed(123)
    return Trainer(
        _Regressor(_RegressorConfig(device="cpu")),
        _Samples(),
        _config(**overrides),
        tmp_path,
        val_data=_Samples(20, seed=1),
    )


def test_loss_falls_and_validation_reports_mae(tmp_path):
    trainer = _trainer(tmp_path, steps=60, save_every=0)
    before = trainer.evaluate()
    result = trainer.train()
    assert result.val_logs["val_loss"] < before["val_loss"]
    assert "val_progress_mae" in result.val_logs and result.step == 60


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    _trainer(full).train()
    final = _Regressor(_RegressorConfig(device="cpu"))
    load_weights(final, full / "checkpoints" / "000012" / "pretrained_model" / "model.safetensors")

    # "Killed" after step 10: only the checkpoint of step 10 survives; resume to 12.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(full / "checkpoints" / "000010", interrupted / "checkpoints" / "000010")
    (interrupted / "checkpoints" / "last").symlink_to("000010")
    trainer = _trainer(interrupted, resume=True)
    trainer.model.net[0].weight.data.zero_()  # proof that the weights come from the checkpoint
    result = trainer.train()
    assert result.step == 12
    resumed = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    for key, value in final.state_dict().items():
        assert torch.equal(resumed[key], value), key
    # A resume that restarts the scheduler or the RNG would differ: check it does matter.
    fresh = _trainer(tmp_path / "fresh", steps=2, save_every=0)
    fresh.train()
    assert not torch.equal(fresh.model.net[0].weight, final.net[0].weight)


def test_a_save_killed_midway_is_cleaned_up_on_the_next_run(tmp_path):
    # What a kill during the first save leaves: a half-written temporary folder and a temporary link.
    checkpoints = tmp_path / "checkpoints"
    half = checkpoints / ".000005.tmpab12cd" / "pretrained_model"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"half")
    (checkpoints / ".last.tmp4242").symlink_to("000005")
    result = _trainer(tmp_path, steps=5).train()  # not "already holds checkpoints"
    assert result.step == 5
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000005", "last"]
    # and on a resumed run too
    (checkpoints / ".000010.tmpzz").mkdir()
    assert _trainer(tmp_path, steps=6, resume=True).train().step == 6
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000005", "000006", "last"]


def test_checkpoint_holds_only_safetensors_and_json(tmp_path):
    _trainer(tmp_path, steps=5).train()
    folder = tmp_path / "checkpoints" / "last"
    files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert files == [
        "config.json",
        "model.safetensors",
        "optimizer_param_groups.json",
        "optimizer_state.safetensors",
        "rng_state.safetensors",
        "scheduler_state.json",
        "training_step.json",
    ]


def test_split_holds_out_whole_episodes():
    train, val = split_episodes(list(range(10)), 0.2, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == list(range(10))
    assert split_episodes([4], 0.5, 0) == ([4], [])


def test_trainers_of_different_precision_in_one_process(tmp_path):
    # accelerate keeps a process-wide state: a bf16 trainer after an fp32 one must still be bf16.
    for precision in ("no", "bf16"):
        trainer = _trainer(tmp_path / precision, mixed_precision=precision, steps=1, save_every=0)
        assert trainer.accelerator.mixed_precision == precision
        assert torch.isfinite(torch.tensor(trainer.train_step(trainer.next_batch(0))["loss"]))
