"""RA-BC: reward-aligned behaviour cloning (SARM paper, eqs. 8-9) for any lerobot policy, ACT included.

- `rewardkit.rabc.weights`: the formulas, pure and vectorised (deltas, weights, κ suggestion).
- `RABCWeighter` / `UniformWeighter`: lerobot `SampleWeighter`s built from a progress parquet.
- `enable_per_sample_loss` / `register_per_sample_loss`: `forward(batch, reduction="none")` for ACT,
  Diffusion and any registered policy type.
- `rewardkit.rabc.training.train_policy`: lerobot's training loop with all of the above installed.
"""

from rewardkit.rabc.per_sample_loss import (
    enable_per_sample_loss,
    register_per_sample_loss,
    supported_policy_types,
    weighted_mean,
)
from rewardkit.rabc.weighter import (
    ProgressTable,
    RABCWeighter,
    UniformWeighter,
    make_sample_weighter,
    policy_chunk_size,
)
from rewardkit.rabc.weights import (
    KappaSuggestion,
    WeightSummary,
    compute_deltas,
    mean_weight_curve,
    rabc_weights,
    suggest_kappa,
    summarize_weights,
)

__all__ = [
    "KappaSuggestion",
    "ProgressTable",
    "RABCWeighter",
    "UniformWeighter",
    "WeightSummary",
    "compute_deltas",
    "enable_per_sample_loss",
    "make_sample_weighter",
    "mean_weight_curve",
    "policy_chunk_size",
    "rabc_weights",
    "register_per_sample_loss",
    "suggest_kappa",
    "summarize_weights",
    "supported_policy_types",
    "weighted_mean",
]
