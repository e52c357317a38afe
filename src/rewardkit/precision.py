"""Low-precision helpers shared by training, labelling and the online step (they import nothing of ours).

bf16 pays on CPUs with native bf16 matrix instructions (AMX-BF16, AVX512-BF16) and on GPUs; elsewhere
torch emulates it and it is slower than float32. `cpu_bf16_flags` says which the CPU has, so that
benchmarks can skip bf16 targets on a CPU without them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def low_precision_copy(module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A copy of `module` whose parameters are `dtype` (buffers, e.g. normalisation statistics, keep
    theirs): half the weight memory read per forward pass in bf16."""
    low = copy.deepcopy(module)
    for parameter in low.parameters():
        parameter.data = parameter.data.to(dtype)
    return low


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native bf16 flags (`BF16_CPU_FLAGS`) this CPU reports; empty when none (or not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]
