"""RewACT: ACT with a reward head, as a lerobot policy (type `rewact`) and a rewardkit reward model.

Importing this package registers the `rewact` policy type with lerobot's config registry and a loader
with `rewardkit.load`, so RewACT checkpoints can be labelled, plotted and evaluated like reward models.
"""

from __future__ import annotations

from pathlib import Path

from rewardkit.models.base import CheckpointError, load_weights, read_config_dict, register_loader
from rewardkit.models.rewact.configuration_rewact import RewACTConfig
from rewardkit.models.rewact.modeling_rewact import RewACTPolicy, build_progress_targets

__all__ = ["RewACTConfig", "RewACTPolicy", "build_progress_targets", "load_rewact"]

PREPROCESSOR_FILE = "policy_preprocessor.json"


def load_rewact(folder: Path) -> RewACTPolicy:
    """Load a RewACT checkpoint folder strictly, with its pre-processor when the folder has one."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import batch_to_transition, transition_to_batch
    from safetensors import SafetensorError

    read_config_dict(folder)
    try:
        config = PreTrainedConfig.from_pretrained(folder)
    except Exception as e:
        raise CheckpointError(f"cannot parse {folder / 'config.json'} as a RewACT config: {e}") from e
    if not isinstance(config, RewACTConfig):
        raise CheckpointError(f"{folder / 'config.json'} is a '{config.type}' checkpoint, not 'rewact'")
    policy = RewACTPolicy(config)
    try:
        load_weights(policy, folder / "model.safetensors", strict=True)
    except SafetensorError as e:
        raise CheckpointError(f"corrupt weights file {folder / 'model.safetensors'}: {e}") from e
    policy.to(config.device)
    if (folder / PREPROCESSOR_FILE).is_file():
        policy.preprocessor = PolicyProcessorPipeline.from_pretrained(
            str(folder),
            config_filename=PREPROCESSOR_FILE,
            to_transition=batch_to_transition,
            to_output=transition_to_batch,
        )
    return policy.eval()


register_loader("rewact", load_rewact)
