"""Training reward models: the generic trainer and one recipe per model.

`train(cfg) -> TrainResult` is the one entry point for every model: it dispatches on the type of `cfg`
(the model's train config: `SARMTrainConfig`, `ClassifierTrainConfig`, `RewACTTrainConfig`). `RECIPES`
names each model type's train config and function; recipes are imported only when used, so importing
this package stays light. Recipes import `rewardkit.models`, never the reverse.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from rewardkit.errors import RewardkitError
from rewardkit.training.trainer import Trainer, TrainingConfig, TrainResult, split_episodes


@dataclass(frozen=True)
class Recipe:
    """How one model type trains: `module.config` is its train config, `module.function(cfg)` trains it.

    Args:
        type: The `--model.type` name (`sarm`); `aliases` are accepted too (the registry name).
        module: The recipe module under rewardkit.training.
        config: The train config class name in `module`.
        function: The function name in `module`: train config -> TrainResult.
        aliases: Other accepted `--model.type` spellings.
    """

    type: str
    module: str
    config: str
    function: str
    aliases: tuple[str, ...] = ()

    def config_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.config)

    def train_function(self) -> Any:
        return getattr(importlib.import_module(self.module), self.function)


RECIPES: dict[str, Recipe] = {
    recipe.type: recipe
    for recipe in (
        Recipe("sarm", "rewardkit.training.sarm", "SARMTrainConfig", "train_sarm", ("rewardkit_sarm",)),
        Recipe(
            "classifier",
            "rewardkit.training.classifier",
            "ClassifierTrainConfig",
            "train_classifier_recipe",
            ("rewardkit_classifier",),
        ),
        Recipe("rewact", "rewardkit.training.rewact", "RewACTTrainConfig", "train_rewact"),
    )
}
DEFAULT_MODEL_TYPE = "sarm"


def recipe_for(model_type: str) -> Recipe:
    """The recipe of a `--model.type` value (its name or an alias); an error listing the choices."""
    for recipe in RECIPES.values():
        if model_type == recipe.type or model_type in recipe.aliases:
            return recipe
    choices = [name for recipe in RECIPES.values() for name in (recipe.type, *recipe.aliases)]
    raise RewardkitError(f"unknown --model.type={model_type}; choose one of {choices}")


def train(cfg: Any) -> TrainResult:
    """Train the model `cfg` configures (any recipe's train config); returns the last checkpoint, step,
    final logs and the recipe's metrics."""
    for recipe in RECIPES.values():
        if type(cfg) is recipe.config_class():
            return recipe.train_function()(cfg)
    raise RewardkitError(
        f"no training recipe takes a {type(cfg).__name__}; train configs: "
        f"{[recipe.config for recipe in RECIPES.values()]}"
    )


__all__ = [
    "DEFAULT_MODEL_TYPE",
    "RECIPES",
    "Recipe",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "recipe_for",
    "split_episodes",
    "train",
]
