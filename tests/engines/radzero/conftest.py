"""Fixtures for the radzero tests: the sentence encoder (a dependency: its absence fails) and a small prepared
subset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def text_encoder():
    """The offline sentence encoder; tests that need it fail with the engine's own message when it is absent."""
    from engines.base import EngineError
    from engines.common.text import load_text_encoder

    try:
        return load_text_encoder()
    except EngineError as exc:
        pytest.fail(f"sentence encoder unavailable: {exc}")


@pytest.fixture(scope="session")
def prepared_small(shared_data: Path, text_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/112/train.npz``: the first 16 training images of the committed split at 112 px, with sentences."""
    from engines.common.cxr import SPLIT_FILE
    from engines.radzero.prepare import prepare

    cxr = shared_data / "cxr"
    out = tmp_path_factory.mktemp("radzero")
    prepare(cxr, out, 112, SPLIT_FILE, limit=16, sides=("train",))
    return out
