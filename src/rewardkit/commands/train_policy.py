"""`rewardkit train-policy`: lerobot's policy training with RA-BC sample weighting, for any policy.

Takes every flag of `lerobot-train` (`--policy.type=act --dataset.root=... --steps=...`) plus
`--sample_weighting.type=rabc|uniform|precomputed` (precomputed: `--sample_weighting.progress_path` is a weights
parquet from `rewardkit weights` or `rewardkit curate --weights_output`), `--sample_weighting.progress_path=PATH` (default:
`<dataset root>/sarm_progress.parquet`), `--sample_weighting.kappa=0.01`, `--sample_weighting.epsilon=1e-6`,
`--sample_weighting.head_mode=sparse|dense` and `--sample_weighting.extra_params='{"nan_weight": 1.0,
"chunk_size": N}'`. Per-batch mean weight and shares of zero and full weights are logged with the loss
(`sample_weight_*`); the dataset's delta mean and std and a κ suggestion are logged at the start and
printed at the end. The progress file must fit the dataset (episode boundaries, the fingerprint `label`
records; not all NaN). Nothing is uploaded unless `--policy.push_to_hub=true --policy.repo_id=USER/NAME`
is given (lerobot-train's own default is to upload).
"""

from __future__ import annotations

from rewardkit.rabc.frame_weights import PrecomputedWeighter
from rewardkit.rabc.training import train_policy
from rewardkit.rabc.weighter import RABCWeighter

HELP = "train a lerobot policy (ACT, Diffusion, pi0, ...) with RA-BC sample weights (lerobot-train flags)"


def main(argv: list[str]) -> int:
    weighter = train_policy(argv)
    if isinstance(weighter, RABCWeighter):
        s = weighter.summary
        print(
            f"RA-BC weights over {s.num_frames} frames: mean {s.mean_weight:.3f}, zero {s.zero_share:.1%}, "
            f"full {s.full_share:.1%}; delta mean {s.delta_mean:.4g}, std {s.delta_std:.4g}"
        )
        print(weighter.suggest_kappa().describe())
    elif isinstance(weighter, PrecomputedWeighter):
        print(
            f"precomputed weights ({weighter.provenance.get('source', '?')}) over {weighter.num_frames} frames: "
            f"mean {weighter.mean_weight:.3f}, zero {weighter.zero_share:.1%}; {weighter.batches_weighted} batches"
        )
    return 0
