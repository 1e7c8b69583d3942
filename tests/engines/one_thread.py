"""A fixture for engine tests on the shared 2-core machine: one torch thread while a test module runs (two
threads oversubscribe the CPU when other jobs run and make small forwards many times slower)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """``torch.set_num_threads(1)`` for the module, restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
