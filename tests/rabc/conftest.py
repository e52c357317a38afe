"""RA-BC tests: one torch thread (the 2 shared cores thrash with intra-op threads; 1 thread is ~10x faster)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
