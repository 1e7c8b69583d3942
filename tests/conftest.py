"""Test set-up: headless Qt and VTK, a private settings folder, and the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LUCENT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _private_settings(tmp_path_factory, monkeypatch):
    """Keep recent files and settings out of the user's real folders."""
    monkeypatch.setenv("LUCENT_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it FAIL when it is absent (scripts/test.sh stops first, in one line)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data not found at {SHARED_DATA} (set LUCENT_SHARED_DATA)", pytrace=False)
    return SHARED_DATA
