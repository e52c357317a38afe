"""Progress targets: small pure functions, arrays in, arrays out, no I/O.

Every reward model here learns from per-frame progress targets in [0, 1].
"""

from __future__ import annotations

import numpy as np


def linear_progress(length: int, start: float = 0.05, end: float = 0.95) -> np.ndarray:
    """Linear progress over an episode of `length` frames, with margins (RewACT's labels).

    0 up to `start` of the episode, 1 from `end`, linear between. Returns (length,) float32.
    """
    if length <= 0:
        raise ValueError(f"episode length must be positive, got {length}")
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"need 0 <= start < end <= 1, got start={start}, end={end}")
    if length == 1:
        return np.ones(1, dtype=np.float32)
    fraction = np.arange(length, dtype=np.float64) / (length - 1)
    return np.clip((fraction - start) / (end - start), 0.0, 1.0).astype(np.float32)
