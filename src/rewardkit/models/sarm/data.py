"""SARM training samples from the feature cache: windows gathered by fancy indexing, targets per episode.

A sample is one (episode, frame). Its sequence is the frame's window (`SARMConfig.window_offsets`,
clamped to the episode), optionally followed by rewound frames (walking back from the window's last frame,
`frame_gap` apart, each labelled with its own frame's target) and zero padding up to
`sequence_length`. Everything is read from arrays indexed by the dataset's global frame index: the
memory-mapped image features of each camera, the state, and per-frame targets computed once per episode.
No video is decoded and no encoder runs here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rewardkit.errors import RewardkitError
from rewardkit.models.sarm.configuration_sarm import SARMConfig


@dataclass(frozen=True)
class EpisodeSlice:
    """One training episode: where its frames sit in the global arrays, and its task.

    Args:
        episode_index: the dataset's episode index.
        from_index: global index of its first frame.
        length: number of frames T.
        task_id: row of its task in the text-feature table.
    """

    episode_index: int
    from_index: int
    length: int
    task_id: int


class SARMTrainingData(torch.utils.data.Dataset):
    """Every (episode, frame) of the given episodes as a SARM training sample.

    Args:
        config: the model's config (window, frame gap, rewind, perturbation, heads).
        image_features: camera -> (N_frames, D) array indexed by global frame index (a memmap is fine).
        episodes: the episodes to draw samples from.
        text_features: (num_tasks, D) task text features; `EpisodeSlice.task_id` indexes it.
        targets: scheme -> (stage (N_frames,) int64, tau (N_frames,) float32), indexed by global frame.
        state: (N_frames, S) raw state, or None.
        perturbation_text_features: (P, D) texts unrelated to any task, used by language perturbation.
        augment: draw rewind and language perturbation (training); False gives plain windows.

    Use `get_batch(indices, rng)` for whole batches (one fancy index per array); `__getitem__` returns
    one sample (a batch of one) for generic loaders.
    """

    def __init__(
        self,
        config: SARMConfig,
        image_features: Mapping[str, np.ndarray],
        episodes: Sequence[EpisodeSlice],
        text_features: np.ndarray,
        targets: Mapping[str, tuple[np.ndarray, np.ndarray]],
        state: np.ndarray | None = None,
        perturbation_text_features: np.ndarray | None = None,
        augment: bool = True,
    ) -> None:
        if not episodes:
            raise RewardkitError("no episodes to train on")
        cameras = list(config.cameras or image_features)
        missing = [c for c in cameras if c not in image_features]
        if missing:
            raise RewardkitError(f"no image features for camera(s) {missing}; have {sorted(image_features)}")
        self.config = config
        self.cameras = cameras
        self.image_features = [image_features[c] for c in cameras]
        self.text_features = np.asarray(text_features, dtype=np.float32)
        self.targets = {
            scheme: targets[scheme]
            for scheme in (["sparse", "dense"] if config.uses_dual_heads else ["sparse"])
        }
        self.state = state
        self.perturbation = perturbation_text_features
        self.augment = augment
        self.episodes = list(episodes)
        lengths = np.array([e.length for e in self.episodes], dtype=np.int64)
        self._episode_of_sample = np.repeat(np.arange(len(self.episodes)), lengths)
        self._frame_of_sample = np.concatenate([np.arange(n) for n in lengths])
        self._from = np.array([e.from_index for e in self.episodes], dtype=np.int64)
        self._length = lengths
        self._task = np.array([e.task_id for e in self.episodes], dtype=np.int64)
        self._offsets = np.asarray(config.window_offsets, dtype=np.int64)
        self._rewind = config.frame_gap * np.arange(1, config.max_rewind_steps + 1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._frame_of_sample)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch(np.array([index]), np.random.default_rng(index) if self.augment else None)
        return {k: v[0] for k, v in batch.items()}

    def get_batch(
        self, indices: np.ndarray, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """A batch of samples: image_features (B, N, L, D) float16, text_features (B, D), state (B, L, S),
        lengths (B,), `{scheme}_stage` (B, L) int64, `{scheme}_tau` (B, L) float32; L = sequence_length.

        Rewind and language perturbation are drawn per sample from `rng` when augmenting.
        """
        config = self.config
        indices = np.asarray(indices, dtype=np.int64)
        batch = len(indices)
        episode = self._episode_of_sample[indices]
        frame = self._frame_of_sample[indices]
        length = self._length[episode]
        window = np.clip(frame[:, None] + self._offsets[None, :], 0, length[:, None] - 1)  # (B, W)
        last = window[:, -1]
        rewind_steps = np.zeros(batch, dtype=np.int64)
        perturbed = np.zeros(batch, dtype=bool)
        augment = self.augment and rng is not None
        if augment and config.max_rewind_steps > 0:
            available = np.minimum(config.max_rewind_steps, last // config.frame_gap)
            draw = (rng.random(batch) < config.rewind_probability) & (available > 0)
            steps = 1 + np.floor(rng.random(batch) * np.maximum(available, 1)).astype(np.int64)
            rewind_steps = np.where(draw, steps, 0)
        if augment and self.perturbation is not None and len(self.perturbation):
            perturbed = rng.random(batch) < config.language_perturbation_probability
        rewound = np.clip(last[:, None] - self._rewind[None, :], 0, None)  # (B, R)
        local = np.concatenate([window, rewound], axis=1)  # (B, L)
        lengths = window.shape[1] + rewind_steps
        valid = np.arange(local.shape[1])[None, :] < lengths[:, None]
        global_index = np.where(valid, self._from[episode, None] + local, self._from[episode, None])
        flat = global_index.reshape(-1)

        images = np.stack([np.asarray(f[flat]) for f in self.image_features], axis=1)  # (B*L, N, D)
        images = images.reshape(batch, local.shape[1], len(self.cameras), -1).transpose(0, 2, 1, 3)
        images = np.where(valid[:, None, :, None], images, 0).astype(np.float16)
        text = self.text_features[self._task[episode]]
        if perturbed.any():
            choice = rng.integers(0, len(self.perturbation), int(perturbed.sum()))
            text = text.copy()
            text[perturbed] = self.perturbation[choice]
        out = {
            "image_features": torch.from_numpy(np.ascontiguousarray(images)),
            "text_features": torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)),
            "lengths": torch.from_numpy(lengths),
        }
        if self.state is not None:
            state = np.asarray(self.state[flat], dtype=np.float32).reshape(batch, local.shape[1], -1)
            out["state"] = torch.from_numpy(np.where(valid[..., None], state, 0.0).astype(np.float32))
        keep = valid & ~perturbed[:, None]  # wrong instruction: no progress, stage 0
        for scheme, (stage, tau) in self.targets.items():
            out[f"{scheme}_stage"] = torch.from_numpy(np.where(keep, stage[global_index], 0).astype(np.int64))
            out[f"{scheme}_tau"] = torch.from_numpy(np.where(keep, tau[global_index], 0.0).astype(np.float32))
        return out


PERTURBATION_VERBS = ("move", "grasp", "rotate", "push", "pull", "slide", "lift", "place", "open", "fold")
PERTURBATION_WORDS = (
    "apple",
    "drawer",
    "towel",
    "bottle",
    "lamp",
    "cable",
    "spoon",
    "plant",
    "window",
    "paper",
    "door",
    "bowl",
    "shoe",
    "pencil",
    "box",
    "cup",
    "ball",
    "knob",
    "lid",
    "sponge",
    "chair",
    "book",
    "phone",
    "bag",
)


def perturbation_texts(count: int, seed: int = 0, exclude: Sequence[str] = ()) -> list[str]:
    """`count` short random instructions (a verb and 1-4 object words) for language perturbation."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    excluded = set(exclude)
    while len(texts) < count:
        words = rng.choice(PERTURBATION_WORDS, size=int(rng.integers(1, 5))).tolist()
        text = " ".join([str(rng.choice(PERTURBATION_VERBS)), "the", *words])
        if text not in excluded:
            texts.append(text)
    return texts
