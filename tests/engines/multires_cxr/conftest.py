"""Fixtures for the multires_cxr tests: a small prepared subset of the real data at 128 px."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prepared_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/128/{train,test}.npz`` for the first 24 images of each side of the committed split."""
    from engines.multires_cxr.prepare import SPLIT_FILE, prepare

    cxr = shared_data / "cxr"
    out = tmp_path_factory.mktemp("mcxr")
    prepare(cxr, out, [128], SPLIT_FILE, limit=24)
    return out
