"""RewACT pre/post processors: exactly ACT's (rename, batch, device, normalise; unnormalise, to CPU).

The reward needs no processing: it is produced in [0, 1] and never normalised. Progress targets do not go
through the processors either: the policy looks them up by the batch's global frame `index` (see
`RewACTPolicy`), which lerobot's processors already carry through as complementary data.
lerobot finds this function by its name, `make_<type>_pre_post_processors`, in the `processor_<type>`
module beside `configuration_<type>`.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.act.processor_act import make_act_pre_post_processors
from lerobot.processor import PolicyAction, PolicyProcessorPipeline

from rewardkit.models.rewact.configuration_rewact import RewACTConfig


def make_rewact_pre_post_processors(
    config: RewACTConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """The pre-processor (observations in) and post-processor (actions out) of a RewACT policy."""
    return make_act_pre_post_processors(config, dataset_stats)
