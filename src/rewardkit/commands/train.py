"""`rewardkit train --model.type=<sarm|classifier|rewact> ...`: train a reward model.

`--model.type` chooses the model (default sarm; the registry names `rewardkit_sarm`, `rewardkit_classifier`
work too); the other flags are that model's train config (`rewardkit train --model.type=X --help` lists
them). Every model trains through `rewardkit.training.train(cfg)`.
"""

from __future__ import annotations

from rewardkit.cli_utils import announce, parse_config, renamed_flags
from rewardkit.training import DEFAULT_MODEL_TYPE, RECIPES, recipe_for, train
from rewardkit.training.flags import DEPRECATED_FLAGS

HELP = "train a reward model (--model.type=sarm|classifier|rewact)"


def split_model_type(argv: list[str]) -> tuple[str, list[str]]:
    """(`--model.type` value or the default, the other flags); both `--model.type=x` and `--model.type x`."""
    rest, model_type = [], None
    args = iter(argv)
    for arg in args:
        if arg.startswith("--model.type="):
            model_type = arg.split("=", 1)[1]
        elif arg == "--model.type":
            model_type = next(args, None)
        else:
            rest.append(arg)
    return model_type or DEFAULT_MODEL_TYPE, rest


def _types_line() -> str:
    names = ", ".join(
        f"{r.type}" + (f" ({', '.join(r.aliases)})" if r.aliases else "") for r in RECIPES.values()
    )
    return f"--model.type: one of {names}; default {DEFAULT_MODEL_TYPE}. Shown: the flags of the chosen type."


def parse_train_config(argv: list[str]):
    """`rewardkit train` flags -> the chosen model's train config (old flag spellings upgraded, with a
    deprecation warning naming the new flag). `--help` prints the flags and exits 0."""
    model_type, rest = split_model_type(argv)
    recipe = recipe_for(model_type)
    config_class = recipe.config_class()
    if recipe.type == "rewact":
        if any(arg in ("-h", "--help") for arg in rest):
            from rewardkit.training import rewact

            print(f"usage: rewardkit train --model.type=rewact [--flag=value ...]\n\n{_types_line()}\n")
            print(rewact.__doc__)
            print("lerobot's flags: lerobot-train --help (policy flags as --model.<field>)")
            raise SystemExit(0)
        return config_class(args=renamed_flags(rest, DEPRECATED_FLAGS, "train"))
    return parse_config(config_class, rest, "train", _types_line(), renamed=DEPRECATED_FLAGS)


def main(argv: list[str]) -> int:
    """Parse the chosen model's train config, train it, print where the checkpoint is."""
    result = train(parse_train_config(argv))
    if result.checkpoint is not None and result.checkpoint.is_dir():
        announce("checkpoint", result.checkpoint)
    return 0
