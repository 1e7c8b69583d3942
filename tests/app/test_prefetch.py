"""Start-up read-ahead: the study is read in a thread while Qt is imported; the window gets the same document."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import loading
from viewer.io.errors import LoadError


def test_prefetched_study_is_the_one_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = loading.open_document([loading.DEMO_STUDY])
    loading.prefetch([loading.DEMO_STUDY])
    loading._prefetched[loading._key([loading.DEMO_STUDY])].result(timeout=60)
    calls = []
    monkeypatch.setattr(loading, "candidates_for", lambda paths: calls.append(paths) or [])
    doc = loading.open_document([loading.DEMO_STUDY])
    assert calls == []  # the read-ahead was used, nothing read twice
    assert doc is not None and doc.base_layer.name == plain.base_layer.name and doc.source == plain.source
    assert np.array_equal(doc.base.array, plain.base.array) and np.array_equal(doc.base.affine, plain.base.affine)
    assert not loading._prefetched


def test_failed_read_ahead_reports_as_usual(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    loading.prefetch([junk])
    with pytest.raises(LoadError) as err:
        loading.open_document([junk])
    with pytest.raises(LoadError) as plain:
        loading.open_document([junk])
    assert str(err.value) == str(plain.value)


def test_read_ahead_of_other_paths_is_dropped(tmp_path: Path) -> None:
    loading.prefetch([tmp_path / "elsewhere"])
    doc = loading.open_document([loading.DEMO_STUDY])
    assert doc is not None and not loading._prefetched


def test_start_gui_opens_the_demo(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from app.cli import _viewer_parser, start_gui

    seen = []
    real = loading.prefetch
    monkeypatch.setattr(loading, "prefetch", lambda paths: seen.append(list(paths)) or real(paths))
    _app, win = start_gui(_viewer_parser().parse_args([]))
    qtbot.addWidget(win)
    assert seen == [[loading.DEMO_STUDY]]
    assert win.document is not None and win.document.base.shape3d[0] == 20
    win.close()


def test_start_up_imports_no_heavy_library(tmp_path: Path) -> None:
    """The demo's first frame needs none of torch, VTK, nibabel or pydicom (together over a second of imports):
    they load when an engine, the 3D view, a NIfTI or an unusual DICOM file first needs them."""
    code = ("import sys; from app.cli import _viewer_parser, start_gui; "
            "app, win = start_gui(_viewer_parser().parse_args([])); "
            "win.study_view.primary.graphics.viewport().repaint(); "
            "print(sorted(m for m in ('torch', 'vtkmodules', 'nibabel', 'pydicom') if m in sys.modules)); "
            "win.close()")
    env = dict(os.environ, LUCENT_CONFIG_DIR=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
