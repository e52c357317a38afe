"""SARM tests run single-threaded: on a small shared CPU, torch's thread pool spins far more than it
computes for models this tiny (3 s vs 0.1 s per step measured)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
