"""The models of the contract suite (`test_model_contract.py`): every model and architecture rewardkit has,
built tiny and randomly initialised, with what the suite needs to save, load and feed them.

Adding a model means adding one `ModelCase` to `CASES`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The per-model test helpers live beside their tests, and pytest puts only the running test file's folder on
# sys.path: reuse them rather than copy their tiny configurations.
for _folder in ("sarm", "rewact", "robometer", "topreward", "vlm_progress"):
    _path = str(Path(__file__).parent / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from lerobot.utils.constants import OBS_STATE as STATE_KEY  # noqa: E402
from rewact_helpers import make_policy_and_processors  # noqa: E402
from robometer_helpers import build_robometer  # noqa: E402
from sarm_helpers import tiny_config as sarm_tiny_config  # noqa: E402
from topreward_helpers import build_topreward_contract  # noqa: E402
from vlm_progress_helpers import build_for_contract as build_vlm_progress  # noqa: E402

from rewardkit.data.dataset import RewardDataset  # noqa: E402

ENCODER = "clip-random:tiny"
# The episode every check labels (24 frames in the tiny dataset, 22 in the two-camera one).
EPISODE = 1


@dataclass(frozen=True)
class ModelCase:
    """One model (and architecture) of the contract suite.

    Args:
        name: the test id.
        dataset: the session fixture the model is built for ("tiny_dataset" or "two_camera_dataset").
        build: (dataset, encoder) -> a fresh, randomly initialised model in eval mode.
        outputs: what `label_episode` returns: name -> shape of one frame's value (() per-frame, (K,) stage
            probabilities).
        online: whether `RewardMonitor` runs the model (False: it must refuse it with a clear error).
        lerobot_entry: lerobot's factory for the model: "reward" (`lerobot.rewards.make_reward_model`) or
            "policy" (`lerobot.policies.factory`).
    """

    name: str
    dataset: str
    build: Callable[[RewardDataset, Any], torch.nn.Module]
    outputs: dict[str, tuple[int, ...]]
    online: bool = True
    lerobot_entry: str = "reward"


# ---- builders ------------------------------------------------------------------------------------
def build_sarm(dataset: RewardDataset, encoder: Any, **overrides: Any) -> torch.nn.Module:
    """A tiny SARM on every camera of `dataset`, two layers, windows of 5 frames 2 apart, state normalised
    with the dataset's statistics (as training sets them)."""
    from rewardkit.models.sarm import StageAwareRewardModel

    stats = dataset.meta.stats[STATE_KEY]
    config = sarm_tiny_config(
        num_layers=2,
        image_dim=encoder.feature_dim,
        text_dim=encoder.feature_dim,
        cameras=list(dataset.camera_keys),
        encoder=ENCODER,
        state_mean=np.asarray(stats["mean"], dtype=float).tolist(),
        state_std=np.asarray(stats["std"], dtype=float).tolist(),
        **overrides,
    )
    torch.manual_seed(0)
    return StageAwareRewardModel(config).eval()


DUAL = dict(
    annotation_mode="dual",
    sparse_subtask_names=["reach", "place"],
    sparse_temporal_proportions=[0.4, 0.6],
    dense_subtask_names=["a", "b", "c"],
    dense_temporal_proportions=[0.2, 0.5, 0.3],
)


def build_rewact(dataset: RewardDataset, encoder: Any) -> torch.nn.Module:
    """A tiny RewACT built the way lerobot-train builds it, with its processors attached (as `rewardkit.load`
    attaches a checkpoint's)."""
    torch.manual_seed(0)
    policy, preprocessor, postprocessor = make_policy_and_processors(dataset.meta)
    policy.preprocessor, policy.postprocessor = preprocessor, postprocessor
    return policy.eval()


def build_classifier(dataset: RewardDataset, encoder: Any, **overrides: Any) -> torch.nn.Module:
    """A tiny success classifier on every camera of `dataset` (+ its state). A frozen backbone gets the
    feature standardisation training would set, from the encoder's features of every frame."""
    from rewardkit.models.classifier import SuccessClassifierConfig, SuccessClassifierRewardModel

    values = dict(
        cameras=list(dataset.camera_keys),
        encoder=ENCODER,
        feature_dim=encoder.feature_dim,
        hidden_dim=32,
        use_state=True,
        state_dim=len(dataset.meta.stats[STATE_KEY]["mean"]),
        device="cpu",
    )
    values.update(overrides)
    torch.manual_seed(0)
    model = SuccessClassifierRewardModel(SuccessClassifierConfig(**values))
    if model.config.backbone == "frozen":
        features = EncoderFeatures(dataset, encoder)
        model.set_feature_statistics(
            np.concatenate(
                [
                    np.stack([features.episode_features(e, c) for c in model.config.cameras], 1)
                    for e in dataset.episode_indices
                ]
            )
        )
    return model.eval()


def build_ensemble(
    dataset: RewardDataset, encoder: Any, seeds: tuple[int, ...] = (0, 1, 2)
) -> torch.nn.Module:
    """Tiny sliding SARMs (`build_sarm`), one per seed, as one ensemble: their progress differs, so the
    ensemble's `progress_std` is not 0."""
    from rewardkit.models.ensemble import EnsembleRewardModel
    from rewardkit.models.sarm import SARMRewardModel

    config = build_sarm(dataset, encoder, architecture="sliding").config
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        members.append(SARMRewardModel(config).eval())
    return EnsembleRewardModel.from_members(members)


CASES = [
    ModelCase(
        "sarm_sliding_causal",
        "tiny_dataset",
        lambda ds, enc: build_sarm(ds, enc, architecture="sliding"),
        {"progress": (), "stage_probs": (1,)},
    ),
    ModelCase(
        "sarm_sliding_fused",
        "two_camera_dataset",
        lambda ds, enc: build_sarm(ds, enc, architecture="sliding", frame_tokens="fused"),
        {"progress": (), "stage_probs": (1,)},
    ),
    ModelCase(
        "sarm_lerobot_causal",
        "tiny_dataset",
        lambda ds, enc: build_sarm(ds, enc, architecture="lerobot"),
        {"progress": (), "stage_probs": (1,)},
    ),
    ModelCase(
        "sarm_centred",
        "two_camera_dataset",
        lambda ds, enc: build_sarm(ds, enc, window="centred"),
        {"progress": (), "stage_probs": (1,)},
        online=False,
    ),
    ModelCase(
        "sarm_dual",
        "tiny_dataset",
        lambda ds, enc: build_sarm(ds, enc, **DUAL),
        {"progress": (), "stage_probs": (2,), "progress_dense": (), "stage_probs_dense": (3,)},
    ),
    ModelCase("rewact", "tiny_dataset", build_rewact, {"progress": ()}, lerobot_entry="policy"),
    ModelCase(
        "classifier_frozen",
        "two_camera_dataset",
        lambda ds, enc: build_classifier(ds, enc, backbone="frozen", camera_fusion="attention"),
        {"progress": (), "success_prob": ()},
    ),
    ModelCase(
        "classifier_finetune",
        "tiny_dataset",
        lambda ds, enc: build_classifier(ds, enc, backbone="finetune", cnn="convnet", image_size=16),
        {"progress": (), "success_prob": ()},
    ),
    # lerobot's Robometer around a tiny random Qwen3-VL (raw frames of the top camera, K=4 frames per query).
    ModelCase(
        "robometer",
        "tiny_dataset",
        lambda ds, enc: build_robometer(camera=ds.camera_keys[0]),
        {"progress": (), "success_prob": ()},
    ),
    # TOPReward (prefix cache) on a tiny random Qwen3-VL; causal "running" normalisation so it runs online.
    ModelCase(
        "topreward_running",
        "tiny_dataset",
        lambda ds, enc: build_topreward_contract(camera=ds.camera_keys[0]),
        {"progress": (), "log_prob": ()},
    ),
    # Zero-shot GVL progress over a fake OpenAI-compatible server on 127.0.0.1 that scores each frame by its
    # content; every frame shown (num_frames >= the episode), so an online step equals labelling.
    ModelCase("vlm_progress", "tiny_dataset", build_vlm_progress, {"progress": ()}),
    # Three tiny SARMs of different seeds: mean progress and the members' spread.
    ModelCase(
        "ensemble_sarm",
        "two_camera_dataset",
        build_ensemble,
        {"progress": (), "progress_std": (), "stage_probs": (1,)},
    ),
]


# ---- feeding -------------------------------------------------------------------------------------
class EncoderFeatures:
    """The labeller's `FeatureSource` computed with the encoder itself, in float32, memoised.

    The online adapters encode each frame in float32; the feature cache rounds to float16. Labelling from
    these features lets "an online step equals labelling" hold to 1e-4; that the cache holds the encoder's
    features is the cache's own test.
    """

    def __init__(self, dataset: RewardDataset, encoder: Any) -> None:
        self.dataset = dataset
        self.encoder = encoder
        self._images: dict[tuple[int, str], np.ndarray] = {}
        self._texts: dict[str, np.ndarray] = {}

    def episode_features(self, episode_index: int, camera: str) -> np.ndarray:
        """(T, D) float32 features of every frame of one episode's camera."""
        key = (episode_index, camera)
        if key not in self._images:
            frames = self.dataset.read_frames(episode_index, camera)
            self._images[key] = self.encoder.encode_images(frames).float().numpy()
        return self._images[key]

    def text_features(self, task: str) -> np.ndarray:
        """(D,) float32 features of a task text."""
        if task not in self._texts:
            self._texts[task] = self.encoder.encode_texts([task])[0].float().numpy()
        return self._texts[task]


def recorded_observations(dataset: RewardDataset, episode_index: int) -> Iterator[dict[str, Any]]:
    """The observations a robot loop would have produced while recording one episode: every camera's frame
    (H, W, 3) uint8, the state and the task text, one dict per frame."""
    cameras = dataset.camera_keys
    frames = {camera: dataset.read_frames(episode_index, camera) for camera in cameras}
    state = dataset.read_columns(episode_index, [STATE_KEY])[STATE_KEY]
    task = dataset.episode(episode_index).task
    for t in range(len(state)):
        yield {**{camera: frames[camera][t] for camera in cameras}, STATE_KEY: state[t], "task": task}


def save_checkpoint(model: torch.nn.Module, folder: Path) -> None:
    """What training writes: the model, and a policy's processors beside it (as lerobot-train does)."""
    model.save_pretrained(folder)
    for processor in (getattr(model, "preprocessor", None), getattr(model, "postprocessor", None)):
        if processor is not None:
            processor.save_pretrained(folder)
