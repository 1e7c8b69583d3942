"""Fixtures for the radzero tests: the sentence encoder (skip when absent) and a small prepared subset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def text_encoder():
    """The offline sentence encoder; tests that need it skip with the engine's own message when absent."""
    from engines.base import EngineError
    from engines.common.text import load_text_encoder

    try:
        return load_text_encoder()
    except EngineError as exc:
        pytest.skip(f"sentence encoder unavailable: {exc}")


@pytest.fixture(scope="session")
def prepared_small(shared_data: Path, text_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/112/train.npz``: the first 16 training images of the committed split at 112 px, with sentences."""
    from engines.multires_cxr.prepare import SPLIT_FILE
    from engines.radzero.prepare import prepare

    cxr = shared_data / "cxr"
    if not (cxr / "metadata.csv").exists():
        pytest.skip(f"chest X-ray data not found at {cxr}")
    if not SPLIT_FILE.exists():
        pytest.skip("engines/multires_cxr/split.json missing (run multires_cxr prepare once)")
    out = tmp_path_factory.mktemp("radzero")
    prepare(cxr, out, 112, SPLIT_FILE, limit=16, sides=("train",))
    return out
