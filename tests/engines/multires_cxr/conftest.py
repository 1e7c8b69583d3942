"""Fixtures for the multires_cxr tests: a small prepared subset of the real data at 128 px."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prepared_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/128/{train,test}.npz`` for the first 16 images of each side of the committed split (one torch
    thread: prepare runs the lung-field model on every image, and two threads oversubscribe the shared CPU)."""
    import torch

    from engines.multires_cxr.prepare import SPLIT_FILE, prepare

    cxr = shared_data / "cxr"
    out = tmp_path_factory.mktemp("mcxr")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prepare(cxr, out, [128], SPLIT_FILE, limit=16)
    finally:
        torch.set_num_threads(n)
    return out
