"""Fixtures for the dermae tests: a small prepared subset of the real dermoscopy data at 64 px."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def derm_data(shared_data: Path) -> Path:
    return shared_data / "dermoscopy"


@pytest.fixture(scope="session")
def prepared_small(derm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/64/{train,test}.npz`` for the first 24 images of each side of the committed split."""
    from engines.dermae.prepare import SPLIT_FILE, prepare

    out = tmp_path_factory.mktemp("dermae")
    prepare(derm_data, out, [64], SPLIT_FILE, limit=24)
    return out


@pytest.fixture(autouse=True)
def _one_torch_thread():  # type: ignore[no-untyped-def]
    """One intra-op thread: on a busy 2-core machine, two threads make these small runs ~10× slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
