"""Which episodes a worker does: the one sharding rule of the cache build and of labelling.

A worker is (process_index, num_processes): a process of `accelerate launch`, or a task of a datatrove
executor (`rank`, `world_size`). Every worker computes the same split from the same episode list, so no
scheduler hands out work: each worker writes its episodes' parts, and one step merges them in episode
order (the result does not depend on the number of workers or on the order they finished in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rewardkit.errors import RewardkitError


@dataclass
class ShardState:
    """Which share of the work this process does, and how the processes meet again.

    Args:
        process_index: this process's rank (0 is the main process, which merges and writes).
        num_processes: how many processes share the episodes.
        gather: takes this process's list of results, returns every process's lists concatenated
            (on every process). `accelerate.utils.gather_object` under `accelerate launch`.
        barrier: waits until every process reached it (`PartialState().wait_for_everyone` under
            `accelerate launch`). None for independent workers (datatrove tasks): they only write their
            parts, and a separate merge step (one task, run after them) writes the final artefact.
    """

    process_index: int = 0
    num_processes: int = 1
    gather: Callable[[list], list] | None = None
    barrier: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.num_processes < 1 or not 0 <= self.process_index < self.num_processes:
            raise RewardkitError(
                f"process_index {self.process_index} out of range for {self.num_processes} processes"
            )

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    @property
    def is_sharded(self) -> bool:
        """True when several workers share the episodes."""
        return self.num_processes > 1

    @classmethod
    def from_accelerate(cls) -> ShardState:
        """The current process's share under `accelerate launch` (a single process otherwise)."""
        import torch
        from accelerate import PartialState
        from accelerate.utils import gather_object

        # Without a GPU, accelerate forms a process group only when told it runs on CPUs (gloo).
        state = PartialState(cpu=not torch.cuda.is_available())
        if state.num_processes == 1:
            return cls()
        return cls(state.process_index, state.num_processes, gather_object, state.wait_for_everyone)


def shard_episodes(episodes: Sequence, process_index: int, num_processes: int) -> list:
    """This worker's episodes (`EpisodeInfo`s): longest first to the least-loaded worker (balanced by
    frames, not by count: one long episode weighs as much as many short ones).

    Deterministic: every worker computes the same split. Returns episodes in index order.
    """
    if not 0 <= process_index < num_processes:
        raise RewardkitError(f"process_index {process_index} out of range for {num_processes} processes")
    loads = [0] * num_processes
    mine = []
    for ep in sorted(episodes, key=lambda e: (-e.length, e.episode_index)):
        target = min(range(num_processes), key=lambda p: (loads[p], p))
        loads[target] += ep.length
        if target == process_index:
            mine.append(ep)
    return sorted(mine, key=lambda e: e.episode_index)
