"""A generic reward-model trainer: AdamW + warm-up/cosine, validation, exact resume, accelerate.

Any model whose `forward(batch) -> (loss, logs)` trains here; `logs` values are floats and the validation
pass averages them (a model that logs "progress_mae" gets a validation progress MAE). Data comes from a
torch Dataset; when it has `get_batch(indices, rng)` (vectorised gathering, e.g. from a memory-mapped
feature cache) whole batches are built in one call, in process; otherwise samples are collated.

Determinism: the samples of step s come from an epoch permutation seeded by (seed, epoch) and the
augmentation of step s from a generator seeded by (seed, s), so they depend on nothing but the step; the
torch RNG (dropout, teacher forcing) is saved with each checkpoint. Resuming from a checkpoint therefore
gives the same weights as the uninterrupted run.

Checkpoint layout (lerobot's): `<output_dir>/checkpoints/<step:06d>/{pretrained_model,training_state}`,
`checkpoints/last` -> the latest. The training state is safetensors + JSON only (no pickle).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from rewardkit.errors import RewardkitError
from rewardkit.precision import low_precision_copy

logger = logging.getLogger(__name__)

MIXED_PRECISIONS = ("no", "bf16", "fp16", "bf16-weights")
CHECKPOINTS = "checkpoints"
PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state"


@dataclass
class TrainingConfig:
    """How to train (CLI: top-level flags of `rewardkit train`).

    Args:
        steps: Optimizer steps in total (a resumed run continues up to this).
        batch_size: Samples per step and device.
        lr: Peak learning rate (default: the model's preset).
        weight_decay: AdamW weight decay (default: the model's preset).
        warmup_steps: Linear warm-up steps (default: the model's preset, scaled to `steps` as lerobot does).
        decay_lr: Final learning rate of the cosine decay (default: the model's preset).
        grad_clip_norm: Gradient norm clipping (0: off).
        optimizer_impl: AdamW implementation: "auto" (fused where torch has it for the parameters'
            device and dtype, else torch's choice), "foreach" or "fused".
        mixed_precision: "no", "bf16" or "fp16" (through accelerate: autocast on CPU and GPU), or
            "bf16-weights": forward and backward run on a bfloat16 copy of the model, refreshed from the
            float32 master weights once per step (one cast per weight, not one per op), whose gradients
            are cast back for the float32 optimizer (the model must compute in its weights' dtype).
        seed: Seed of the data order, augmentation and initialisation.
        val_fraction: Fraction of episodes held out for validation (at least one when > 0).
        val_every: Validate every N steps (0: only at the end).
        val_batches: Most validation batches per validation (0: all).
        save_every: Save a checkpoint every N steps (the last step is always saved).
        log_every: Log losses every N steps.
        resume: Continue from `<output_dir>/checkpoints/last`.
        wandb: Log to Weights & Biases (needs `pip install wandb`).
        wandb_project: W&B project name.
        progress_bar: Show a tqdm bar (stderr) with loss and samples/s.
    """

    steps: int = 20000
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float | None = None
    warmup_steps: int | None = None
    decay_lr: float | None = None
    grad_clip_norm: float = 10.0
    optimizer_impl: str = "auto"
    mixed_precision: str = "no"
    seed: int = 1000
    val_fraction: float = 0.1
    val_every: int = 1000
    val_batches: int = 50
    save_every: int = 5000
    log_every: int = 100
    resume: bool = False
    wandb: bool = False
    wandb_project: str = "rewardkit"
    progress_bar: bool = True


@dataclass
class TrainResult:
    """What a training run produced: the last checkpoint's model folder (None when an outside loop chose
    it), last step, final logs, and the recipe's end-of-run metrics (e.g. the classifier's AUROC)."""

    checkpoint: Path | None
    step: int
    train_logs: dict[str, float] = field(default_factory=dict)
    val_logs: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def resume_folder(output_dir: str | Path) -> Path:
    """The checkpoint `--resume` continues from: `<output_dir>/checkpoints/last`."""
    return Path(output_dir) / CHECKPOINTS / "last"


# Fields of a model config that describe this process, not the model: a resumed run takes them from its
# own flags, never from the checkpoint (a run saved on a GPU may resume on a CPU).
RUNTIME_FIELDS = ("device",)


def config_for_resume(given: Any, saved: Any) -> Any:
    """The model config a resumed run continues with: `saved` (the checkpoint's own config), with the
    fields the user set taken from `given` (the run's parsed config): those where `given` differs from its
    class's defaults, and the runtime fields (`RUNTIME_FIELDS`). Today's defaults never replace what the
    run was saved with (e.g. a default that changed since, like SARM's `frame_tokens`).

    A flag set to exactly today's default cannot be told from no flag: the saved value is kept then.
    Both configs are of one dataclass type; a new config is returned, neither is changed.
    """
    if type(saved) is not type(given):
        raise RewardkitError(
            f"the checkpoint to resume holds a '{getattr(saved, 'type', type(saved).__name__)}' model, this run "
            f"trains '{getattr(given, 'type', type(given).__name__)}': resume with the run's own --model.type"
        )
    default = type(given)()
    chosen = {
        f.name: getattr(given, f.name)
        for f in dataclasses.fields(given)
        if f.init and (f.name in RUNTIME_FIELDS or getattr(given, f.name) != getattr(default, f.name))
    }
    return dataclasses.replace(saved, **chosen)


def split_episodes(episodes: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole episodes for validation: (train, val), val = round(fraction * n), at least 1 when the
    fraction is positive and there are 2+ episodes."""
    episodes = sorted(episodes)
    if val_fraction <= 0 or len(episodes) < 2:
        return episodes, []
    count = min(len(episodes) - 1, max(1, round(val_fraction * len(episodes))))
    held = set(np.random.default_rng(seed).choice(episodes, size=count, replace=False).tolist())
    return [e for e in episodes if e not in held], [e for e in episodes if e in held]


def fused_adamw_supported(parameters: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW takes these parameters (floating point, all on one device type it has
    a fused kernel for)."""
    try:  # torch's own list (private): a torch without it gets its default implementation
        from torch.optim.optimizer import _get_fused_kernels_supported_devices

        supported = set(_get_fused_kernels_supported_devices())
    except ImportError:
        return False
    devices = {p.device.type for p in parameters}
    return len(devices) == 1 and devices <= supported and all(p.is_floating_point() for p in parameters)


class Trainer:
    """Trains `model` on `train_data`, validating on `val_data`, checkpointing into `output_dir`.

    `optimizer_preset` / `scheduler_preset` default to the model config's `get_optimizer_preset()` /
    `get_scheduler_preset()` (lerobot's AdamWConfig / CosineDecayWithWarmupSchedulerConfig).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_data: torch.utils.data.Dataset,
        config: TrainingConfig,
        output_dir: str | Path,
        val_data: torch.utils.data.Dataset | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        from accelerate import Accelerator

        if len(train_data) == 0:
            raise RewardkitError("the training data is empty")
        self.config = config
        self.output_dir = Path(output_dir)
        self.train_data = train_data
        self.val_data = val_data
        self.run_config = run_config or {}
        from accelerate.state import AcceleratorState

        # accelerate keeps one process-wide state; a second trainer with another precision (a benchmark,
        # a test) needs it rebuilt (below). Distributed launches run one trainer per process.
        if config.mixed_precision not in MIXED_PRECISIONS:
            raise RewardkitError(
                f"mixed_precision must be one of {MIXED_PRECISIONS}, got '{config.mixed_precision}'"
            )
        self.bf16_weights = config.mixed_precision == "bf16-weights"
        accelerate_precision = "no" if self.bf16_weights else config.mixed_precision
        state = AcceleratorState._shared_state
        if state and str(state.get("_mixed_precision", accelerate_precision)) != accelerate_precision:
            AcceleratorState._reset_state()
        self.accelerator = Accelerator(mixed_precision=accelerate_precision)
        self.model = model
        self.optimizer = self._make_optimizer(model)
        self.scheduler = self._make_scheduler(self.optimizer)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        # bf16-weights: the bfloat16 copy the forward runs on (its parameters pair with the master's)
        self._low: torch.nn.Module | None = None
        if self.bf16_weights:
            self._low = low_precision_copy(self.accelerator.unwrap_model(self.model), torch.bfloat16)
        self.step = 0
        self._permutations: dict[int, np.ndarray] = {}

    # ---- optimisation ------------------------------------------------------------------------------
    def _presets(self) -> tuple[Any, Any]:
        model_config = getattr(self.model, "config", None)
        optimizer = model_config.get_optimizer_preset() if model_config is not None else None
        scheduler = model_config.get_scheduler_preset() if model_config is not None else None
        return optimizer, scheduler

    def _make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        preset, _ = self._presets()
        lr = self.config.lr if self.config.lr is not None else getattr(preset, "lr", 1e-4)
        decay = (
            self.config.weight_decay
            if self.config.weight_decay is not None
            else getattr(preset, "weight_decay", 1e-2)
        )
        options: dict[str, Any] = {}
        parameters = [p for p in model.parameters() if p.requires_grad]
        if self.config.optimizer_impl == "auto" and fused_adamw_supported(parameters):
            # one pass over the weights instead of a dozen: the for-loop AdamW torch picks on CPU took a
            # third of the default-size SARM's training step
            options["fused"] = True
        elif self.config.optimizer_impl == "foreach":
            options["foreach"] = True
        elif self.config.optimizer_impl == "fused":
            options["fused"] = True
        elif self.config.optimizer_impl != "auto":
            raise RewardkitError(
                f"optimizer_impl must be auto, foreach or fused, got '{self.config.optimizer_impl}'"
            )
        return torch.optim.AdamW(
            parameters,
            lr=lr,
            betas=tuple(getattr(preset, "betas", (0.9, 0.999))),
            eps=getattr(preset, "eps", 1e-8),
            weight_decay=decay,
            **options,
        )

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        from lerobot.optim import CosineDecayWithWarmupSchedulerConfig

        _, preset = self._presets()
        peak = optimizer.param_groups[0]["lr"]
        warmup = getattr(preset, "num_warmup_steps", 0)
        decay_steps = getattr(preset, "num_decay_steps", self.config.steps)
        decay_lr = (
            self.config.decay_lr
            if self.config.decay_lr is not None
            else getattr(preset, "decay_lr", peak / 10)
        )
        if self.config.warmup_steps is not None:
            # An explicit warm-up is used as given (lerobot scales only its preset to short runs).
            warmup = self.config.warmup_steps
            decay_steps = max(self.config.steps, warmup + 1)
        schedule = CosineDecayWithWarmupSchedulerConfig(
            num_warmup_steps=warmup, num_decay_steps=decay_steps, peak_lr=peak, decay_lr=min(decay_lr, peak)
        )
        return schedule.build(optimizer, self.config.steps)

    # ---- data --------------------------------------------------------------------------------------
    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            self._permutations = {
                epoch: np.random.default_rng([self.config.seed, epoch]).permutation(len(self.train_data))
            }
        return self._permutations[epoch]

    def batch_indices(self, step: int) -> np.ndarray:
        """Sample indices of step `step` for this process: epochs of shuffled samples, in order."""
        world = self.accelerator.num_processes
        size = self.config.batch_size * world
        positions = np.arange(step * size, (step + 1) * size)
        count = len(self.train_data)
        indices = np.empty(size, dtype=np.int64)
        for epoch in np.unique(positions // count):
            chosen = positions // count == epoch
            indices[chosen] = self._epoch_permutation(int(epoch))[positions[chosen] % count]
        return indices[self.accelerator.process_index :: world]

    def make_batch(
        self, data: torch.utils.data.Dataset, indices: np.ndarray, rng: np.random.Generator | None
    ) -> dict[str, torch.Tensor]:
        """One batch on the training device: `data.get_batch(indices, rng)` or collated samples."""
        if hasattr(data, "get_batch"):
            batch = data.get_batch(indices, rng)
        else:
            batch = default_collate([data[int(i)] for i in indices])
        device = self.accelerator.device
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def next_batch(self, step: int) -> dict[str, torch.Tensor]:
        """The training batch of step `step` (depends only on the seed and the step)."""
        rng = np.random.default_rng([self.config.seed, step, 1])
        return self.make_batch(self.train_data, self.batch_indices(step), rng)

    # ---- steps -------------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Forward, backward, clip, optimizer and scheduler step on one batch; returns the model's logs."""
        self.model.train()
        if self._low is not None:
            loss, logs = self._low_precision_backward(batch)
        else:
            with self.accelerator.autocast():
                loss, logs = self.model(batch)
            self.accelerator.backward(loss)
        if self.config.grad_clip_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        logs = dict(logs)
        logs["lr"] = self.scheduler.get_last_lr()[0]
        return logs

    def _low_precision_backward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """bf16-weights: refresh the bfloat16 copy from the float32 weights, run forward and backward on
        it, and hand its gradients (cast to float32) to the master parameters."""
        assert self._low is not None
        master = [p for p in self.accelerator.unwrap_model(self.model).parameters() if p.requires_grad]
        low = [p for p in self._low.parameters() if p.requires_grad]
        with torch.no_grad():
            torch._foreach_copy_(low, master)
        self._low.train()
        loss, logs = self._low(batch)
        grads = torch.autograd.grad(loss, low, allow_unused=True)
        world = self.accelerator.num_processes
        for parameter, grad in zip(master, grads, strict=True):
            if grad is not None:
                parameter.grad = grad.float()
                if world > 1:  # the copy is not wrapped for distributed training: average here
                    torch.distributed.all_reduce(parameter.grad)
                    parameter.grad /= world
        return loss, logs

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean of the model's logs over the validation data (no augmentation), prefixed "val_"."""
        if self.val_data is None or len(self.val_data) == 0:
            return {}
        self.model.eval()
        size = self.config.batch_size
        starts = range(0, len(self.val_data), size)
        if self.config.val_batches > 0:
            # Spread the evaluated batches over the whole validation set.
            picks = np.linspace(0, len(starts) - 1, min(len(starts), self.config.val_batches)).round()
            starts = [starts[int(i)] for i in np.unique(picks)]
        totals: dict[str, float] = {}
        count = 0
        for start in starts:
            indices = np.arange(start, min(start + size, len(self.val_data)))
            batch = self.make_batch(self.val_data, indices, None)
            with self.accelerator.autocast():
                _, logs = self.model(batch)
            for key, value in logs.items():
                totals[key] = totals.get(key, 0.0) + float(value) * len(indices)
            count += len(indices)
        self.model.train()
        return {f"val_{k}": v / count for k, v in totals.items()}

    # ---- the loop ----------------------------------------------------------------------------------
    def train(self, on_log: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
        """Run from the current step (0, or the resumed checkpoint's) to `config.steps`."""
        from tqdm.auto import tqdm

        config = self.config
        if self.accelerator.is_main_process:
            self.remove_stale_temporaries()
        self.accelerator.wait_for_everyone()
        if config.resume:
            last = resume_folder(self.output_dir)
            if not last.exists():
                raise FileNotFoundError(f"--resume: no checkpoint to resume from at {last}")
            self.load_checkpoint(last)
            logger.info("resumed from %s at step %d", last.resolve(), self.step)
        else:
            existing = self.output_dir / CHECKPOINTS
            if existing.is_dir() and any(existing.iterdir()):
                raise RewardkitError(
                    f"{existing} already holds checkpoints: pass --resume=true to continue that run, or choose "
                    "another --output_dir"
                )
            torch.manual_seed(config.seed)
        run = self._start_wandb()
        is_main = self.accelerator.is_main_process
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            disable=not (config.progress_bar and is_main),
            desc="train",
            dynamic_ncols=True,
        )
        logs: dict[str, float] = {}
        val_logs: dict[str, float] = {}
        checkpoint = None
        samples = 0
        started = time.perf_counter()
        while self.step < config.steps:
            batch = self.next_batch(self.step)
            logs = self.train_step(batch)
            self.step += 1
            samples += config.batch_size * self.accelerator.num_processes
            rate = samples / max(time.perf_counter() - started, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", samples_s=f"{rate:.1f}")
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(f"loss is {logs['loss']} at step {self.step}; lower --lr?")
            last_step = self.step == config.steps
            if config.val_every and self.step % config.val_every == 0 or last_step:
                val_logs = self.evaluate()
            if self.step % config.log_every == 0 or last_step:
                record = {**logs, **val_logs, "samples_per_s": rate}
                logger.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in record.items()))
                if run is not None:
                    run.log(record, step=self.step)
                if on_log is not None:
                    on_log(self.step, record)
            if config.save_every and self.step % config.save_every == 0 or last_step:
                checkpoint = self.save_checkpoint()
        bar.close()
        if run is not None:
            run.finish()
        if checkpoint is None:
            checkpoint = self.output_dir / CHECKPOINTS / "last"
        return TrainResult(checkpoint / PRETRAINED, self.step, logs, val_logs)

    def _start_wandb(self) -> Any:
        if not self.config.wandb or not self.accelerator.is_main_process:
            return None
        try:
            import wandb
        except ImportError as e:
            raise RewardkitError("--wandb=true needs the wandb package: pip install wandb") from e
        return wandb.init(
            project=self.config.wandb_project,
            config={"training": asdict(self.config), **self.run_config},
            dir=str(self.output_dir),
            resume="allow",
        )

    # ---- checkpoints -------------------------------------------------------------------------------
    def remove_stale_temporaries(self) -> list[Path]:
        """Remove what a save killed midway left in `checkpoints/`: `.<step>.tmp*` folders and
        `.last.tmp*` links (a save renames its temporary into place only once it is whole, so these are
        never a checkpoint). Called when a run starts, before looking for checkpoints. Returns them."""
        folder = self.output_dir / CHECKPOINTS
        if not folder.is_dir():
            return []
        stale = [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
        for path in stale:
            logger.info("removing %s, left by a checkpoint save that was interrupted", path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return stale

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/<step>/` (model + training state) atomically and point `last` at it."""
        from safetensors.torch import save_file

        self.accelerator.wait_for_everyone()
        folder = self.output_dir / CHECKPOINTS / f"{self.step:06d}"
        if not self.accelerator.is_main_process:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.tmp") as tmp:
            tmp_path = Path(tmp)
            self.accelerator.unwrap_model(self.model).save_pretrained(tmp_path / PRETRAINED)
            state_dir = tmp_path / TRAINING_STATE
            state_dir.mkdir()
            optimizer_state = self.optimizer.state_dict()
            tensors = {
                f"{param}.{name}": value.detach().cpu().contiguous()
                for param, values in optimizer_state["state"].items()
                for name, value in values.items()
                if torch.is_tensor(value)
            }
            save_file(tensors, str(state_dir / "optimizer_state.safetensors"))
            (state_dir / "optimizer_param_groups.json").write_text(
                json.dumps(optimizer_state["param_groups"])
            )
            (state_dir / "scheduler_state.json").write_text(json.dumps(self.scheduler.state_dict()))
            rng = {"torch": torch.get_rng_state()}
            if torch.cuda.is_available():
                for i, s in enumerate(torch.cuda.get_rng_state_all()):
                    rng[f"cuda.{i}"] = s
            save_file(rng, str(state_dir / "rng_state.safetensors"))
            (state_dir / "training_step.json").write_text(json.dumps({"step": self.step}))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp_path, folder)
            tmp_path.mkdir()  # TemporaryDirectory removes it on exit
        link = folder.parent / "last"
        tmp_link = folder.parent / f".last.tmp{os.getpid()}"
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        os.symlink(folder.name, tmp_link)
        os.replace(tmp_link, link)
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore weights, optimizer, scheduler, step and RNG from a checkpoint folder."""
        from safetensors.torch import load_file

        from rewardkit.models.base import load_weights

        folder = Path(folder)
        state_dir = folder / TRAINING_STATE
        load_weights(self.accelerator.unwrap_model(self.model), folder / PRETRAINED / "model.safetensors")
        flat = load_file(str(state_dir / "optimizer_state.safetensors"))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in flat.items():
            param, name = key.split(".", 1)
            state.setdefault(int(param), {})[name] = value
        groups = json.loads((state_dir / "optimizer_param_groups.json").read_text())
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.scheduler.load_state_dict(json.loads((state_dir / "scheduler_state.json").read_text()))
        rng = load_file(str(state_dir / "rng_state.safetensors"))
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available():
            cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
            if cuda:
                torch.cuda.set_rng_state_all(cuda)
        self.step = int(json.loads((state_dir / "training_step.json").read_text())["step"])
