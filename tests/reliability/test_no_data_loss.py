"""No data loss: SIGKILL the app while annotating and while an engine job runs, then restore; atomic exports.

(a)/(b) run :mod:`tests.reliability.app_session` in a child process on the real CT series (offscreen Qt, a
private ``LUCENT_CONFIG_DIR``), kill it with SIGKILL after it reported what it saved, and open the same study
in a fresh MainWindow here, answering the restore question with yes. (c) makes each export fail half-way
(``RLIMIT_FSIZE``: the file system refuses to grow a file past a limit, as a full disk would) and checks that
the previous file is intact and no partial/temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.main_window import MainWindow
from app.settings import Settings
from tests.conftest import REPO
from viewer.model.annotations import Annotation

STUDY = "dicom/ct_series"


def _start(study: Path, mode: str, config: Path) -> subprocess.Popen:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LUCENT_CONFIG_DIR=str(config), PYTHONPATH=str(REPO),
               LUCENT_TORCH_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.app_session", str(study), mode],
                            cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _lines_until(proc: subprocess.Popen, stop, timeout_s: float = 90.0) -> list[str]:
    """Read the child's lines until ``stop(line)``; then SIGKILL it at once. Returns the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if stop(lines[-1]):
                return lines
        pytest.fail(f"the app session did not get there: {lines}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)  # no clean-up, no closeEvent, no final autosave
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL or proc.returncode is not None
    return lines


def _restore(qtbot, study: Path, config: Path, monkeypatch) -> tuple[MainWindow, list[str]]:
    monkeypatch.setenv("LUCENT_CONFIG_DIR", str(config))
    win = MainWindow(Settings())
    qtbot.addWidget(win)
    asked: list[str] = []
    monkeypatch.setattr(win, "ask_restore", lambda q: asked.append(q) or True)
    assert win.open_paths([study])
    return win, asked


def test_sigkill_while_annotating_loses_no_saved_annotation(qtbot, shared_data, tmp_path, monkeypatch):
    study, config = shared_data / STUDY, tmp_path / "config"
    proc = _start(study, "annotations", config)
    lines = _lines_until(proc, lambda line: line.startswith("saved 3 "))
    reported = [line.split(" ", 2)[2] for line in lines if line.startswith("saved ")]
    assert reported == ["note 1", "note 2", "note 3"]
    assert not list((config / "autosave").glob(".*.tmp")), "a half-written autosave was left behind"

    win, asked = _restore(qtbot, study, config, monkeypatch)
    assert asked and "annotation(s)" in asked[0]
    texts = [a.text for a in win.document.annotations]
    assert set(reported) <= set(texts), (reported, texts)
    win.engines.runner.shutdown()


def test_sigkill_during_a_job_keeps_finished_layers_only(qtbot, shared_data, tmp_path, monkeypatch):
    study, config = shared_data / STUDY, tmp_path / "config"
    proc = _start(study, "job", config)
    lines = _lines_until(proc, lambda line: line == "job-running", timeout_s=150)
    layer_line = next(line for line in lines if line.startswith("saved-layers "))
    n_layers, names = layer_line.split(" ", 2)[1:]
    finished = names.split("|")
    assert int(n_layers) == len(finished) == 2

    win, _ = _restore(qtbot, study, config, monkeypatch)
    restored = [la.name for la in win.document.layers][1:]
    assert restored == finished  # the job killed half-way added nothing
    assert not any("half made" in n for n in restored)
    assert [a.text for a in win.document.annotations] == ["note 1"]
    heat = win.document.layers[1]
    assert heat.volume.array.shape == win.document.base.array.shape
    assert np.isfinite(heat.volume.array).all()
    win.engines.runner.shutdown()


# ---- (c) atomic exports ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _disk_full_after(nbytes: int):
    """Writes that grow a file past ``nbytes`` fail with EFBIG (SIGXFSZ ignored) — a full disk, mid-write."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def ct_window(window, shared_data):
    assert window.open_paths([shared_data / STUDY])
    doc = window.document
    doc.annotations.append(Annotation("text", "axial", doc.base.center_patient(), "keep me"))
    from tests.engines.toy_engine import ToyEngine

    runner = window.engines.runner
    window.engines.run(ToyEngine())
    assert runner.wait_idle(60) and len(doc.layers) == 3
    return window


def _exporters(win: MainWindow, out: Path):
    doc = win.document
    heat = doc.layers[1]
    return {
        "screenshot.png": lambda p: win.save_screenshot(p),
        "workspace.lucent": lambda p: win.save_workspace(p),
        "layer.nii.gz": lambda p: _raise_shown(win, lambda: win.export_layer(heat, p)),
        "layer.nii": lambda p: _raise_shown(win, lambda: win.export_layer(heat, p)),
    }


def _raise_shown(win: MainWindow, fn) -> None:
    """export_layer shows errors instead of raising: turn a shown error into an exception here."""
    win.last_error = None
    fn()
    if getattr(win, "last_error", None):
        raise OSError(win.last_error)


@pytest.mark.parametrize("name", ["screenshot.png", "workspace.lucent", "layer.nii.gz", "layer.nii"])
def test_export_failing_mid_write_leaves_previous_file_intact(ct_window, tmp_path, name):
    out = tmp_path / "exports"
    out.mkdir()
    target = out / name
    export = _exporters(ct_window, out)[name]
    export(target)  # a first, complete export
    first = target.read_bytes()
    assert len(first) > 4096
    before = _folder_state(out)
    with _disk_full_after(2048), pytest.raises(Exception):  # noqa: B017, PT011 - any error type is fine here
        export(target)
    after = _folder_state(out)
    assert after.keys() == before.keys(), f"partial or temporary files left: {set(after) - set(before)}"
    assert after[name] == first, "the previous export was damaged"


def test_autosave_failing_mid_write_keeps_the_previous_autosave(ct_window):
    from viewer.io.workspace import save_workspace

    saver = ct_window.autosaver
    saver.save_now()
    path = saver.path
    first = path.read_bytes()
    ct_window.document.annotations.append(Annotation("text", "axial", [0.0, 0.0, 0.0], "second"))
    with _disk_full_after(2048), pytest.raises(Exception):  # noqa: B017, PT011
        save_workspace(ct_window.document, path)
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_autosave_failure_is_reported_not_raised(ct_window):
    saver = ct_window.autosaver
    saver.save_now()
    ct_window.document.annotations.append(Annotation("text", "axial", [0.0, 0.0, 0.0], "second"))
    with _disk_full_after(2048):
        saver.save_now()
    assert saver.last_error and "autosave failed" in saver.last_error

