"""Reliability tests: every shared input they read must be byte-identical after each test.

The checksum covers every file :func:`tests.reliability.corpus.shared_inputs` lists (all DICOM, the NIfTI
sources, a few images) plus the shipped demo study and engine weights: SHA-256 before the first test and
after every test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA

from .corpus import shared_inputs


def watched_files() -> list[Path]:
    files = shared_inputs(SHARED_DATA) if SHARED_DATA.is_dir() else []
    files += sorted((REPO / "resources" / "demo" / "ct_abdomen").iterdir())
    files += sorted((REPO / "resources" / "weights" / "multires_cxr").iterdir())
    return [f for f in files if f.is_file()]


def digests(files: list[Path]) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="session")
def _input_baseline() -> tuple[list[Path], dict[str, str]]:
    files = watched_files()
    return files, digests(files)


@pytest.fixture(autouse=True)
def inputs_unchanged(_input_baseline):
    """After every test: the inputs it may have read are byte-identical to the session's start."""
    yield
    files, before = _input_baseline
    after = digests(files)
    changed = [f for f in before if after.get(f) != before[f]]
    assert not changed, f"a test changed its input files: {changed[:5]}"


@pytest.fixture
def window(qtbot):
    """A shown main window with no study (settings in the test's private folder); shut down afterwards."""
    from app.main_window import MainWindow
    from app.settings import Settings

    win = MainWindow(Settings())
    qtbot.addWidget(win)
    win.resize(1000, 800)
    win.show()
    yield win
    win.engines.runner.shutdown()
