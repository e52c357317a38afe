"""In-process RewACT training and held-out scoring on the bundled dataset (shared by
bench_rewact_quality.py and the diagnosis in it).

The whole dataset (48 episodes of ~30 frames, 64x64 images) is decoded once into memory and normalised
with the policy's own pre-processor, so the timed part is the training step alone (lerobot-train's loop
adds dataloading on top; the demo measures that end to end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rewardkit.demo import REWACT_FIELDS
from rewardkit.evaluation.metrics import mean_absolute_error, roc_auc, value_order_correlation

CAMERA_PREFIX = "observation.images."
# lerobot-train's gradient-norm clip (its optimiser presets' grad_clip_norm), over all parameters.
CLIP_NORM = 10.0

# The demo's RewACT (rewardkit.demo._train_rewact) as config fields.
DEMO_FIELDS = REWACT_FIELDS


@dataclass
class Data:
    """Every frame of the dataset, normalised: batch dict of (N, ...) tensors, plus per-frame arrays."""

    batch: dict[str, Tensor]
    episode: np.ndarray  # (N,) episode index of each frame
    truth: np.ndarray  # (N,) simulator progress
    meta: object


def load_data(root, chunk_size: int = 10) -> Data:
    """Decode every frame once; actions as chunks of `chunk_size` (ACT's delta indices)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    probe = LeRobotDataset("local/bundled", root=root)
    fps = probe.meta.fps
    dataset = LeRobotDataset(
        "local/bundled", root=root, delta_timestamps={"action": [i / fps for i in range(chunk_size)]}
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=False, num_workers=0)
    parts: dict[str, list] = {}
    for batch in loader:
        for key, value in batch.items():
            if isinstance(value, Tensor):
                parts.setdefault(key, []).append(value)
    batch = {key: torch.cat(values) for key, values in parts.items()}
    episode = batch["episode_index"].numpy().astype(int)
    truth = batch["ground_truth.progress"].reshape(-1).numpy().astype(np.float32)
    keep = ["observation.state", "action", "action_is_pad", "index"]
    keep += [k for k in batch if k.startswith(CAMERA_PREFIX) and not k.endswith("_is_pad")]
    return Data({k: batch[k] for k in keep}, episode, truth, dataset.meta)


def make_policy(data: Data, seed: int, **fields):
    """A fresh RewACT (as lerobot's make_policy builds it) and its pre-processor."""
    from lerobot.policies.factory import make_policy as lerobot_make_policy
    from lerobot.policies.factory import make_pre_post_processors

    from rewardkit.models.rewact import RewACTConfig

    torch.manual_seed(seed)
    config = RewACTConfig(**{**DEMO_FIELDS, **fields})
    policy = lerobot_make_policy(config, ds_meta=data.meta)
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=data.meta.stats)
    return policy, preprocessor


def failure_frames(data: Data, episodes: list[int]) -> list[int]:
    """Where each of `episodes` failed, as an annotator would mark it (bench_quality.py's rule): the first
    frame at which the simulator's reached progress attains its final level."""
    from rewardkit.sim.phases import progress_reached

    frames = []
    for episode in episodes:
        reached = np.asarray(progress_reached(data.truth[data.episode == episode]), dtype=np.float64)
        frames.append(int(np.argmax(reached >= reached[-1] - 1e-6)))
    return frames


def normalise(data: Data, preprocessor) -> dict[str, Tensor]:
    out = preprocessor(dict(data.batch))
    return {k: v for k, v in out.items() if isinstance(v, Tensor)}


def make_optimizer(policy, head_lr: float | None = None) -> torch.optim.Optimizer:
    """lerobot-train's optimiser for ACT: AdamW with the config's lr / weight decay, backbone group."""
    groups = policy.get_optim_params()
    if isinstance(groups, dict):
        groups = [{"params": list(groups.values())}]
    return torch.optim.AdamW(
        groups, lr=policy.config.optimizer_lr, weight_decay=policy.config.optimizer_weight_decay
    )


def take(batch: dict[str, Tensor], rows: np.ndarray) -> dict[str, Tensor]:
    rows_t = torch.as_tensor(rows)
    return {k: v[rows_t] for k, v in batch.items()}


@dataclass
class Score:
    voc_success: float
    auroc: float
    mae: float
    action_l1: float
    reward_loss: float


@torch.no_grad()
def score(policy, norm: dict[str, Tensor], data: Data, held_out: list[int], failed: set[int]) -> Score:
    """Held-out VOC on successes, final-reward AUROC (success vs failure), MAE vs simulator progress,
    and ACT's action L1 (masked, normalised actions, as its training loss)."""
    policy.eval()
    rows = np.flatnonzero(np.isin(data.episode, held_out))
    batch = take(norm, rows)
    _, reward = policy.predict_action_chunk_and_reward(batch)
    loss, logs = policy.forward(batch)
    policy.train()
    reward = reward.numpy()
    vocs, finals, positives, maes = [], [], [], []
    for episode in held_out:
        mask = data.episode[rows] == episode
        curve = reward[mask]
        maes.append(mean_absolute_error(curve, data.truth[rows][mask]))
        finals.append(curve[-1])
        positives.append(episode not in failed)
        if episode not in failed:
            vocs.append(value_order_correlation(curve))
    return Score(
        voc_success=float(np.mean(vocs)),
        auroc=roc_auc(np.array(finals), np.array(positives)),
        mae=float(np.mean(maes)),
        action_l1=float(logs["l1_loss"]),
        reward_loss=float(logs.get("reward_loss", float("nan"))),
    )


def trunk_grad_norm(policy) -> float:
    """The gradient norm over ACT's parameters (all but the reward head's)."""
    head = {id(p) for p in policy.reward_head.parameters()}
    grads = [p.grad for p in policy.parameters() if id(p) not in head and p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def train(
    policy,
    norm: dict[str, Tensor],
    data: Data,
    train_episodes: list[int],
    steps: int,
    seed: int,
    batch_size: int = 8,
    checkpoints: tuple[int, ...] = (),
    on_checkpoint=None,
    on_step=None,
    optimizer=None,
    grad_norms: list | None = None,
) -> float:
    """lerobot-train's step (AdamW, grad-norm clip 10 over all parameters) on random batches of the
    training frames. Returns the seconds spent in training steps (checkpoint scoring excluded).

    `grad_norms`, when given, gets one (total, trunk) pair per step: the gradient norm over all parameters
    that the clip sees and over ACT's parameters alone (the reward head excluded), before clipping."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(np.isin(data.episode, train_episodes))
    optimizer = optimizer or make_optimizer(policy)
    policy.train()
    seconds = 0.0
    for step in range(1, steps + 1):
        tick = time.perf_counter()
        batch = take(norm, rng.choice(rows, batch_size, replace=False))
        loss, logs = policy.forward(batch)
        optimizer.zero_grad()
        loss.backward()
        for parameter in policy.reward_head.parameters():
            # Plain ACT (reward_loss_weight=0) leaves the head without gradients; zeros make the clip
            # reduce its norm over the same tensors as RewACT's, so the float summation order (and thus
            # the clip factor, to the last bit) is the same in both and ACT's steps can be compared.
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        if on_step is not None:
            on_step(step, logs)
        untimed = time.perf_counter()
        trunk = trunk_grad_norm(policy) if grad_norms is not None else 0.0
        untimed = time.perf_counter() - untimed  # a measurement, not part of lerobot's step
        total = torch.nn.utils.clip_grad_norm_(policy.parameters(), CLIP_NORM)
        if grad_norms is not None:
            grad_norms.append((float(total), trunk))
        optimizer.step()
        seconds += time.perf_counter() - tick - untimed
        if step in checkpoints and on_checkpoint is not None:
            on_checkpoint(step, seconds)
    return seconds
