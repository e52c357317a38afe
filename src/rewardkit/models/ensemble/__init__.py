"""Deep ensembles of reward models (registered as `rewardkit_ensemble`): mean progress and its spread."""

from rewardkit.models.ensemble.combine import combine_checkpoints
from rewardkit.models.ensemble.configuration_ensemble import EnsembleConfig
from rewardkit.models.ensemble.modeling_ensemble import EnsembleRewardModel

__all__ = ["EnsembleConfig", "EnsembleRewardModel", "combine_checkpoints"]
