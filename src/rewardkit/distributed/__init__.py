"""Scaling out: episode shards on an existing distributed engine.

Building the feature cache and labelling are both "a list of episodes -> one part per episode, written
atomically; then one merge in episode order". The rule for who does which episode is `shard_episodes`;
the engines that run the workers are the ones lerobot users already know:

- `accelerate launch -m rewardkit.cli cache|label ...` (one node, several processes/GPUs): the
  processes share the episodes (`ShardState.from_accelerate`), meet at a barrier, the main one merges.
- datatrove's executors (`pip install rewardkit[distributed]`): `--distributed.executor=local|slurm`
  runs N tasks that write parts, then one merge task (`rewardkit.distributed.engines`).

A part already written is never redone, so a worker killed mid-shard is simply rerun.
"""

from rewardkit.distributed.shards import ShardState, shard_episodes

__all__ = ["ShardState", "shard_episodes"]
