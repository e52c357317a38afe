"""Loading lerobot processor pipelines (`policy_preprocessor.json`, ...) without running checkpoint code.

lerobot's `DataProcessorPipeline.from_pretrained` resolves each step of a processor JSON either by its
`registry_name` (a lookup in lerobot's `ProcessorStepRegistry`) or by a dotted `"class"` path that it
imports and calls with the JSON's `config` as keyword arguments: a downloaded checkpoint whose JSON names
`os.system` or `subprocess.Popen` runs a command on load. A registered name is not enough either: some
registered steps load models when built (`action_tokenizer_processor` takes `trust_remote_code`,
`tokenizer_processor`, `reward_classifier_processor` and the VLM encoder steps download and open other
checkpoints), so a JSON naming them with a chosen path could still run code.

rewardkit therefore loads a processor JSON only when every step is one of the registered *data* steps in
`ALLOWED_STEPS` (rename, batch, device, (un)normalise, relative actions: their constructors take plain
values), no step names a `"class"` path, and every state file is a bare `*.safetensors` name inside the
checkpoint folder. The whole file is validated before any step class is looked up or called; the pipeline
is then built from the validated dict (the file is read once) with its state read by safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardkit.models.base import CheckpointError

# Registered lerobot processor steps whose constructors only store plain values (no file, hub or module
# access): what ACT/RewACT (and lerobot's other action policies) save. Extend deliberately, after reading
# the step's constructor.
ALLOWED_STEPS = frozenset(
    {
        "rename_observations_processor",
        "to_batch_processor",
        "to_batch_processor_action",
        "to_batch_processor_observation",
        "to_batch_processor_complementary_data",
        "device_processor",
        "normalizer_processor",
        "unnormalizer_processor",
        "relative_actions_processor",
    }
)
STEP_KEYS = frozenset({"registry_name", "config", "state_file"})
# The processor files lerobot-train writes beside a policy checkpoint.
PROCESSOR_FILES = ("policy_preprocessor.json", "policy_postprocessor.json")


def check_processor_config(data: Any, path: Path) -> None:
    """Refuse a processor config that names anything but an allowed registered data step.

    Args:
        data: the parsed JSON of `path`.
        path: the file it came from (named in errors).

    Raises:
        CheckpointError: naming the file, the step index and the offending name or key.
    """
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise CheckpointError(f"{path} is not a lerobot processor config (no 'steps' list)")
    if not isinstance(data.get("name", ""), str):
        raise CheckpointError(f"{path}: the pipeline 'name' must be a string")
    for index, step in enumerate(data["steps"]):
        where = f"{path}, step {index}"
        if not isinstance(step, dict):
            raise CheckpointError(f"{where}: a step must be a JSON object, got {type(step).__name__}")
        if "class" in step:
            raise CheckpointError(
                f"{where} names the class {step['class']!r}: rewardkit does not import classes named by a "
                "checkpoint (that runs code from the file). Only lerobot's registered data steps load: "
                f"{sorted(ALLOWED_STEPS)}"
            )
        unknown = sorted(set(step) - STEP_KEYS)
        if unknown:
            raise CheckpointError(f"{where}: unknown key(s) {unknown}; a step has only {sorted(STEP_KEYS)}")
        name = step.get("registry_name")
        if not isinstance(name, str) or name not in ALLOWED_STEPS:
            raise CheckpointError(
                f"{where} names the processor step {name!r}, which rewardkit does not load from a checkpoint "
                f"(allowed: lerobot's registered data steps {sorted(ALLOWED_STEPS)})"
            )
        if not isinstance(step.get("config", {}), dict):
            raise CheckpointError(f"{where} ({name}): 'config' must be a JSON object")
        if "state_file" in step:
            state_file = step["state_file"]
            if (
                not isinstance(state_file, str)
                or Path(state_file).name != state_file
                or state_file.startswith(".")
                or not state_file.endswith(".safetensors")
            ):
                raise CheckpointError(
                    f"{where} ({name}): state file {state_file!r} must be a '*.safetensors' file name in "
                    "the checkpoint folder (no paths, no other formats)"
                )


def read_processor_config(path: Path) -> dict[str, Any]:
    """Parse and check one processor JSON (see `check_processor_config`); returns the dict."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read processor config {path}: {e}") from e
    check_processor_config(data, Path(path))
    return data


def check_processor_files(folder: str | Path) -> None:
    """Check every lerobot processor JSON of a policy checkpoint folder (those that exist).

    For code that hands the folder to lerobot's own loader afterwards (`lerobot-train --policy.path`):
    a hostile file is refused before lerobot reads it.
    """
    for name in PROCESSOR_FILES:
        if (Path(folder) / name).is_file():
            read_processor_config(Path(folder) / name)


def check_policy_path(args: list[str], flag: str = "--policy.path") -> list[str]:
    """Check the checkpoint a lerobot-train command line fine-tunes from; returns the args to pass on.

    lerobot-train loads the processors of `--policy.path` with its own loader, which imports and calls
    whatever a `policy_*processor.json` names. The checkpoint is resolved here first (a hub repo is
    fetched, JSON and safetensors only, and lerobot is given that local folder) and its processor files
    are checked (`check_processor_files`): a hostile file is refused before lerobot reads it. Accepts
    `--policy.path=X` and `--policy.path X`.
    """
    from rewardkit.models.base import resolve_checkpoint

    checked = list(args)
    for position, arg in enumerate(checked):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and position + 1 < len(checked):
            position, value = position + 1, checked[position + 1]
        else:
            continue
        folder = resolve_checkpoint(value)
        check_processor_files(folder)
        checked[position] = f"{flag}={folder}" if checked[position].startswith(flag + "=") else str(folder)
    return checked


def load_processor_pipeline(
    folder: str | Path,
    config_filename: str,
    to_transition: Callable[[Any], Any],
    to_output: Callable[[Any], Any],
) -> Any:
    """Build the lerobot `PolicyProcessorPipeline` saved as `folder / config_filename`, safely.

    The JSON is checked first (only `ALLOWED_STEPS`, no class paths, safetensors state files in the
    folder); nothing is imported or called before that. `to_transition` / `to_output` are lerobot's
    converters (e.g. `batch_to_transition` / `transition_to_batch` for a pre-processor).

    Raises:
        CheckpointError: naming the file (and the step) when it is refused, unreadable or inconsistent.
    """
    from lerobot.processor import PolicyProcessorPipeline
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / config_filename
    data = read_processor_config(path)
    states = {}
    for index, step in enumerate(data["steps"]):
        if "state_file" not in step:
            continue
        state_path = folder / step["state_file"]
        if not state_path.is_file():
            raise CheckpointError(f"{path}, step {index}: missing state file {state_path}")
        try:
            states[step["state_file"].removesuffix(".safetensors")] = load_file(str(state_path), device="cpu")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}, step {index}: corrupt state file {state_path}: {e}") from e
    try:
        return PolicyProcessorPipeline.from_config(
            data, state_dict=states, to_transition=to_transition, to_output=to_output
        )
    except (ValueError, KeyError, TypeError, ImportError) as e:
        raise CheckpointError(f"cannot build the processor pipeline of {path}: {e}") from e
