"""RA-BC sample weighter for lerobot's training loop: every frame's weight computed once, looked up per batch.

`RABCWeighter` implements lerobot's `SampleWeighter` interface (`compute_batch_weights(batch) ->
(weights (B,), stats)`, `get_stats()`), so lerobot's `update_policy` uses it unchanged. At set-up it
reads the progress parquet (columns index, episode_index, frame_index, progress_sparse[, progress_dense];
written by `rewardkit label` or lerobot's `compute_rabc_weights`), computes all deltas and weights with
`rewardkit.rabc.weights` and keeps a dense table weight[global frame index]; a batch costs one gather.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from lerobot.utils.sample_weighting import SampleWeighter, SampleWeightingConfig
from torch import nn

from rewardkit.errors import RewardkitError
from rewardkit.labelling.parquet import PROGRESS_FILENAME, check_progress, read_progress_parquet
from rewardkit.rabc.per_sample_loss import enable_per_sample_loss
from rewardkit.rabc.weights import (
    KappaSuggestion,
    WeightSummary,
    compute_deltas,
    rabc_weights,
    suggest_kappa,
    summarize_weights,
)

logger = logging.getLogger(__name__)

HEAD_MODES = ("sparse", "dense")
EXTRA_PARAMS = ("nan_weight", "chunk_size", "missing_weight")
WEIGHTING_TYPES = ("rabc", "uniform", "precomputed")


@dataclass
class ProgressTable:
    """One progress column of a progress parquet, row-aligned arrays.

    Args:
        path: the file read.
        head_mode: "sparse" or "dense" (column `progress_<head_mode>`).
        index: (N,) int64 global frame index.
        episode_index: (N,) int64 episode of each frame.
        progress: (N,) float64 progress, NaN where unknown.
        progress_std: (N,) float64 an ensemble's spread of progress (its `progress_std` column), or None
            when the file has none.
    """

    path: Path
    head_mode: str
    index: np.ndarray
    episode_index: np.ndarray
    progress: np.ndarray
    progress_std: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | Path, head_mode: str = "sparse", dataset: object = None) -> ProgressTable:
        """Read `path` with the one progress-parquet reader and check it (`check_progress`).

        `dataset`: the `RewardDataset` the weights are for; when given, a file that does not fit its
        episodes (or the fingerprint the labeller recorded) is refused. All-NaN progress is refused,
        some NaN is logged with the frames and episodes.

        Raises:
            FileNotFoundError: the file does not exist.
            RewardkitError: unknown head mode, a column missing, or a file that does not fit.
        """
        if head_mode not in HEAD_MODES:
            raise RewardkitError(f"head_mode must be one of {HEAD_MODES}, got {head_mode!r}")
        path = resolve_progress_path(path)
        episodes, metadata = read_progress_parquet(path, with_index=True)
        column = "progress" if head_mode == "sparse" else f"progress_{head_mode}"
        if not episodes:
            raise RewardkitError(f"progress file {path} has no frames")
        if column not in next(iter(episodes.values())):
            raise RewardkitError(
                f"progress file {path} lacks column 'progress_{head_mode}'; "
                "use --sample_weighting.head_mode=sparse (or label with a model that has a dense head)"
            )
        check_progress(path, episodes, metadata, column, dataset)
        return cls(
            path=path,
            head_mode=head_mode,
            index=np.concatenate([e["index"] for e in episodes.values()]),
            episode_index=np.concatenate(
                [np.full(len(e["index"]), k, np.int64) for k, e in episodes.items()]
            ),
            progress=np.concatenate([e[column] for e in episodes.values()]).astype(np.float64),
            progress_std=(
                np.concatenate([e["progress_std"] for e in episodes.values()]).astype(np.float64)
                if "progress_std" in next(iter(episodes.values()))
                else None
            ),
        )


def resolve_progress_path(path: str | Path) -> Path:
    """A local path, or `hf://datasets/<owner>/<name>/<file>` fetched from the Hub (asked for explicitly)."""
    text = str(path)
    prefix = "hf://datasets/"
    if text.startswith(prefix):
        from huggingface_hub import hf_hub_download

        owner, name, filename = text[len(prefix) :].split("/", 2)
        return Path(hf_hub_download(repo_id=f"{owner}/{name}", filename=filename, repo_type="dataset"))
    return Path(path)


def policy_chunk_size(policy_config: object) -> int:
    """Δ for a policy: its `chunk_size` (ACT, pi0, SmolVLA, ...), else its `horizon` (Diffusion)."""
    for name in ("chunk_size", "horizon"):
        value = getattr(policy_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise RewardkitError(
        f"cannot tell the action chunk size of policy type {getattr(policy_config, 'type', '?')!r} "
        "(no chunk_size or horizon); pass --sample_weighting.extra_params='{\"chunk_size\": N}'"
    )


class RABCWeighter(SampleWeighter):
    """RA-BC weights of every frame of a progress file, looked up by global frame index.

    Args:
        table: the progress table (see `ProgressTable.from_file`).
        chunk_size: Δ, the policy's action chunk size.
        kappa: κ; deltas above it get weight 1.
        epsilon: ε of eq. 8.
        nan_weight: weight of frames whose delta is NaN (1.0 = plain behaviour cloning for them).
        device: where batch weights are returned (the table lives there too).
    """

    def __init__(
        self,
        table: ProgressTable,
        chunk_size: int,
        kappa: float = 0.01,
        epsilon: float = 1e-6,
        nan_weight: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        if not 0.0 <= nan_weight <= 1.0:
            raise RewardkitError(f"nan_weight must lie in [0, 1], got {nan_weight}")
        if table.index.size == 0:
            raise RewardkitError(f"progress file {table.path} has no frames")
        self.path = table.path
        self.head_mode = table.head_mode
        self.chunk_size = int(chunk_size)
        self.kappa = float(kappa)
        self.epsilon = float(epsilon)
        self.nan_weight = float(nan_weight)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.index = table.index
        self.episode_index = table.episode_index
        self.deltas = compute_deltas(table.index, table.episode_index, table.progress, self.chunk_size)
        self.weights, self.delta_mean, self.delta_std = rabc_weights(
            self.deltas, self.kappa, self.epsilon, self.nan_weight
        )
        self.summary: WeightSummary = summarize_weights(
            self.weights, self.deltas, self.delta_mean, self.delta_std
        )
        num_slots = int(table.index.max()) + 1
        # NaN marks a frame absent from the file: looking it up is an error, not a silent default.
        if num_slots == table.index.size and bool(np.all(table.index == np.arange(num_slots))):
            by_index = self.weights
        else:
            by_index = np.full(num_slots, np.nan, dtype=np.float32)
            by_index[table.index] = self.weights
        self._weight_by_index = torch.from_numpy(by_index).to(self.device)

    @classmethod
    def from_file(
        cls,
        progress_path: str | Path,
        chunk_size: int,
        head_mode: str = "sparse",
        kappa: float = 0.01,
        epsilon: float = 1e-6,
        nan_weight: float = 1.0,
        device: torch.device | str | None = None,
        dataset: object = None,
    ) -> RABCWeighter:
        """Read `progress_path` (column `progress_<head_mode>`) and compute every frame's weight.

        `dataset` (a `RewardDataset`): refuse a file that does not fit its episodes (see
        `ProgressTable.from_file`).
        """
        table = ProgressTable.from_file(progress_path, head_mode, dataset)
        return cls(table, chunk_size, kappa, epsilon, nan_weight, device)

    @property
    def num_frames(self) -> int:
        """Frames in the progress file."""
        return int(self.index.size)

    def weights_for(self, index: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Weights (B,) float32 on `self.device` of the frames with global indices `index` (B,).

        Raises:
            ValueError: an index is not in the progress file.
        """
        index = torch.as_tensor(index, device=self._weight_by_index.device).long().reshape(-1)
        num_slots = self._weight_by_index.numel()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_slots):
            bad = int(index.max()) if int(index.max()) >= num_slots else int(index.min())
            raise RewardkitError(
                f"frame index {bad} is not in progress file {self.path} (it covers indices 0..{num_slots - 1}); "
                "was it labelled from another dataset?"
            )
        weights = self._weight_by_index[index]
        absent = torch.isnan(weights)
        if bool(absent.any()):
            bad = int(index[absent][0])
            raise RewardkitError(f"frame index {bad} is not in progress file {self.path}")
        return weights

    def compute_batch_weights(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Weights (B,) of a training batch, by its "index" (B,) global frame indices.

        Returns:
            (weights (B,) in [0, 1] on `self.device`, stats: mean_weight, zero_weight_share,
            full_weight_share of this batch). Weights are not renormalised: the training loop divides
            the weighted loss by their sum.
        """
        if "index" not in batch:
            raise RewardkitError("RA-BC needs the batch's global frame indices (key 'index'); none found")
        weights = self.weights_for(batch["index"])
        mean, zero, full = torch.stack(
            [weights.mean(), (weights == 0).float().mean(), (weights == 1).float().mean()]
        ).tolist()
        return weights, {"mean_weight": mean, "zero_weight_share": zero, "full_weight_share": full}

    def get_stats(self) -> dict:
        """Dataset-level statistics: type, frames, Δ, head, κ, ε, μ and σ of deltas, weight shares."""
        return {
            "type": "rabc",
            "num_frames": self.num_frames,
            "chunk_size": self.chunk_size,
            "head_mode": self.head_mode,
            "kappa": self.kappa,
            "epsilon": self.epsilon,
            "nan_weight": self.nan_weight,
            **{k: v for k, v in asdict(self.summary).items() if k != "num_frames"},
        }

    def suggest_kappa(self, target_mean_weight: float = 0.55) -> KappaSuggestion:
        """A κ giving a mean weight near `target_mean_weight` (see `rewardkit.rabc.weights.suggest_kappa`)."""
        return suggest_kappa(self.deltas, self.kappa, self.epsilon, self.nan_weight, target_mean_weight)


class UniformWeighter(SampleWeighter):
    """The control: weight 1 for every sample, through the same per-sample loss path as RA-BC."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def compute_batch_weights(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Ones (B,), B taken from "index" or "action"."""
        for key in ("index", "action"):
            if isinstance(batch.get(key), torch.Tensor):
                size = batch[key].shape[0]
                break
        else:
            raise RewardkitError("cannot tell the batch size: the batch has no 'index' or 'action' tensor")
        return torch.ones(size, device=self.device), {"mean_weight": 1.0}

    def get_stats(self) -> dict:
        """{"type": "uniform"}."""
        return {"type": "uniform"}


def default_progress_path(dataset_root: str | Path | None, dataset_repo_id: str | None) -> Path:
    """`<dataset root>/sarm_progress.parquet`, the root being lerobot's default for a repo id if unset."""
    if dataset_root:
        return Path(dataset_root) / PROGRESS_FILENAME
    if dataset_repo_id:
        from lerobot.utils.constants import HF_LEROBOT_HOME

        return Path(HF_LEROBOT_HOME) / dataset_repo_id / PROGRESS_FILENAME
    raise RewardkitError("RA-BC needs --sample_weighting.progress_path (or a dataset root to look next to)")


def local_dataset(dataset_root: str | Path | None, dataset_repo_id: str | None = None):
    """The `RewardDataset` a progress file is checked against, or None when there is none to open.

    `dataset_root` when it holds a LeRobot dataset; else, for a `dataset_repo_id`, the dataset lerobot
    resolves for it (`$HF_LEROBOT_HOME/<repo_id>` or its hub snapshot; lerobot's training loop has already
    fetched the dataset it trains on, so only metadata already there is read).
    """
    from rewardkit.data.dataset import DatasetError, open_dataset

    if dataset_root:
        if not (Path(dataset_root) / "meta" / "info.json").is_file():
            return None
        return open_dataset(dataset_repo_id, dataset_root)
    if not dataset_repo_id:
        return None
    try:
        return open_dataset(dataset_repo_id)
    except (DatasetError, OSError) as error:
        logger.warning("cannot open dataset %s to check the progress file: %s", dataset_repo_id, error)
        return None


def make_sample_weighter(
    config: SampleWeightingConfig | None,
    policy: nn.Module,
    device: torch.device | str,
    dataset_root: str | Path | None = None,
    dataset_repo_id: str | None = None,
) -> SampleWeighter | None:
    """Build the weighter lerobot's training loop asks for, and give `policy` a per-sample loss.

    Same signature as `lerobot.utils.sample_weighting.make_sample_weighter`, so it can stand in for it.
    `config.type` is "rabc", "uniform" or "precomputed" (a weights parquet, `config.progress_path`, read
    by `rewardkit.rabc.frame_weights.PrecomputedWeighter`); `config.extra_params` may hold "nan_weight" and
    "chunk_size" (RA-BC; default: the policy's chunk size) and "missing_weight" (precomputed). The progress file is checked against the dataset at
    `dataset_root` (episode boundaries, the labeller's fingerprint, NaN). The policy is checked (and adapted, see
    `enable_per_sample_loss`) here, before the first step, so an unsupported policy fails at once.
    """
    if config is None:
        return None
    unknown = sorted(set(config.extra_params) - set(EXTRA_PARAMS))
    if unknown:
        raise RewardkitError(f"unknown sample_weighting.extra_params {unknown}; known: {list(EXTRA_PARAMS)}")
    if config.type == "uniform":
        enable_per_sample_loss(policy)
        return UniformWeighter(device)
    if config.type == "precomputed":
        return _precomputed_weighter(config, policy, device, dataset_root, dataset_repo_id)
    if config.type != "rabc":
        raise RewardkitError(
            f"unknown sample_weighting.type {config.type!r}; choose one of {WEIGHTING_TYPES}"
        )
    chunk_size = int(config.extra_params.get("chunk_size") or policy_chunk_size(policy.config))
    source = config.progress_path or default_progress_path(dataset_root, dataset_repo_id)
    dataset = local_dataset(dataset_root, dataset_repo_id)
    if dataset is None:
        logger.warning("RA-BC: no local dataset to check %s against (episodes, fingerprint)", source)
    enable_per_sample_loss(policy)
    weighter = RABCWeighter.from_file(
        source,
        chunk_size=chunk_size,
        head_mode=config.head_mode,
        kappa=config.kappa,
        epsilon=config.epsilon,
        nan_weight=float(config.extra_params.get("nan_weight", 1.0)),
        device=device,
        dataset=dataset,
    )
    log_weighter(weighter)
    return weighter


def _precomputed_weighter(
    config: SampleWeightingConfig,
    policy: nn.Module,
    device: torch.device | str,
    dataset_root: str | Path | None,
    dataset_repo_id: str | None,
) -> SampleWeighter:
    """The weighter of a weights parquet (`--sample_weighting.progress_path`), checked against the dataset."""
    from rewardkit.rabc.frame_weights import PrecomputedWeighter

    if not config.progress_path:
        raise RewardkitError(
            "--sample_weighting.type=precomputed needs --sample_weighting.progress_path=<weights parquet> "
            "(from `rewardkit weights` or `rewardkit curate --weights_output=PATH`)"
        )
    dataset = local_dataset(dataset_root, dataset_repo_id)
    if dataset is None:
        logger.warning("precomputed weights: no local dataset to check %s against", config.progress_path)
    enable_per_sample_loss(policy)
    missing = config.extra_params.get("missing_weight")
    weighter = PrecomputedWeighter.from_file(
        resolve_progress_path(config.progress_path),
        missing_weight=None if missing is None else float(missing),
        device=device,
        dataset=dataset,
    )
    logger.info(
        "precomputed weights on %d frames of %s (%s): mean %.3f, zero %.1f%%",
        weighter.num_frames,
        weighter.path,
        weighter.provenance.get("source", "unknown source"),
        weighter.mean_weight,
        100 * weighter.zero_share,
    )
    return weighter


def log_weighter(weighter: RABCWeighter) -> None:
    """Log the dataset-level weight statistics and a κ suggestion (stderr)."""
    s = weighter.summary
    logger.info(
        "RA-BC on %d frames of %s (%s head, chunk %d): mean weight %.3f, zero %.1f%%, full %.1f%%, "
        "NaN %.1f%%, delta mean %.4g std %.4g",
        s.num_frames,
        weighter.path,
        weighter.head_mode,
        weighter.chunk_size,
        s.mean_weight,
        100 * s.zero_share,
        100 * s.full_share,
        100 * s.nan_share,
        s.delta_mean,
        s.delta_std,
    )
    logger.info("RA-BC kappa: %s", weighter.suggest_kappa().describe())
