"""rewardkit: learned reward (task-progress) models for robot learning on LeRobot datasets."""

__version__ = "0.1.0"


def load(path_or_repo_id, device=None, revision=None, **options):
    """Load any rewardkit model: a checkpoint (folder or hub repo id) or a named model
    ("topreward:<vlm>", "robometer", "vlm_progress", ...); see `rewardkit.models.base.load`."""
    from rewardkit.models.base import load as _load

    return _load(path_or_repo_id, device=device, revision=revision, **options)


__all__ = ["load", "__version__"]
