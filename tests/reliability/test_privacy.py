"""Privacy: screenshots, workspaces, autosaves, exported layers, settings, logs, job error details and the
command line never carry the patient's name, ID or birth date — unless the user asks for them on a
screenshot (``include_patient=True``), where the legend must show them.

The values are unique strings written into a synthetic DICOM series, so any byte sequence found in an output
can only have come from the study. Zip members (workspaces) and gzip streams (NIfTI) are scanned unpacked.
"""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.screenshot import ExportOptions, legend_lines
from tests.conftest import REPO
from tests.engines.toy_engine import ToyEngine
from tests.viewer.io.dicom_factory import write_series
from viewer.model.annotations import Annotation

NAME, PID, BIRTH = "Zyxwvuq^Privatina", "PID-93711-QX", "19230817"
NEEDLES = ["Zyxwvuq", "Privatina", PID, BIRTH, "1923-08-17", "17.08.1923", "08/17/1923"]


def _needles_bytes() -> list[bytes]:
    out = []
    for n in NEEDLES:
        out += [n.encode(), n.encode("utf-16-le"), n.encode("utf-16-be")]
    return out


def _unpacked(path: Path) -> list[tuple[str, bytes]]:
    """The file's bytes, plus the bytes of its zip members / gzip stream (recursively one level)."""
    data = path.read_bytes()
    parts = [(str(path), data)]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                member = zf.read(name)
                parts.append((f"{path}!{name}", member))
                if member[:2] == b"\x1f\x8b":
                    parts.append((f"{path}!{name}!gunzip", gzip.decompress(member)))
    elif data[:2] == b"\x1f\x8b":
        parts.append((f"{path}!gunzip", gzip.decompress(data)))
    return parts


def _leaks(folders: list[Path], texts: dict[str, str]) -> list[str]:
    found = []
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                for where, blob in _unpacked(p):
                    found += [f"{where}: {n!r}" for n in _needles_bytes() if n in blob]
    for where, text in texts.items():
        found += [f"{where}: {n!r}" for n in NEEDLES if n in text]
    return found


@pytest.fixture
def private_study(tmp_path) -> Path:
    folder = tmp_path / "study"
    z, y, x = np.mgrid[0:6, 0:48, 0:48]
    arr = (np.hypot(x - 24, y - 24) * 10 + z * 5).astype(np.int16)
    for p in write_series(folder, arr, np.diag([0.8, 0.8, 2.0, 1.0]), description="private test"):
        ds = pydicom.dcmread(p)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PID, BIRTH
        ds.save_as(p)
    return folder


def test_outputs_carry_no_patient_identifiers(window, qtbot, private_study, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    out.mkdir()
    win = window
    assert win.open_paths([private_study])
    doc = win.document
    assert doc.base.metadata.get("patient_id") == PID  # the reader did see them
    doc.annotations.append(Annotation("text", "axial", doc.base.center_patient(), "finding"))
    runner = win.engines.runner
    win.engines.run(ToyEngine(), query="edges")
    assert runner.wait_idle(60) and len(doc.layers) == 3
    failed = []
    runner.failed.connect(lambda _id, msg, details: failed.append(msg + "\n" + details))
    win.engines.run(ToyEngine(fail="bug"))
    assert runner.wait_idle(60) and failed

    win.save_screenshot(out / "shot.png")
    win.save_screenshot(out / "shot_view.png", focused_view_only=True)
    win.save_workspace(out / "ws.lucent")
    win.export_layer(doc.layers[1], out / "heat.nii.gz")
    win.export_layer(doc.base_layer, out / "base.nii")
    win.autosaver.save_now()
    qtbot.wait(50)

    texts = {"window title": win.windowTitle(), "status bar": win.statusBar().currentMessage(),
             "job failure": failed[0], "legend": "\n".join(legend_lines(doc)),
             "log records": "\n".join(r.getMessage() for r in caplog.records)}
    captured = capfd.readouterr()
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    config = Path(os.environ["LUCENT_CONFIG_DIR"])
    assert (config / "autosave").is_dir()
    leaks = _leaks([out, config], texts)
    assert not leaks, leaks
    assert _leaks([private_study], {}), "the scanner must find the values in the input itself"


def test_include_patient_puts_them_in_the_legend(window, private_study, tmp_path):
    from PySide6.QtGui import QImage

    assert window.open_paths([private_study])
    lines = "\n".join(legend_lines(window.document, include_patient=True))
    for value in ("Zyxwvuq", "Privatina", PID):
        assert value in lines, lines
    assert BIRTH in lines or "1923-08-17" in lines, lines
    window.save_screenshot(tmp_path / "without.png", ExportOptions(resolution="1x"))
    window.save_screenshot(tmp_path / "with.png", ExportOptions(resolution="1x", include_patient=True))
    h0, h1 = QImage(str(tmp_path / "without.png")).height(), QImage(str(tmp_path / "with.png")).height()
    assert h1 > h0  # one more legend line burnt in
    without = "\n".join(legend_lines(window.document))
    assert not any(n in without for n in NEEDLES)


def _cli(args: list[str], config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LUCENT_CONFIG_DIR=str(config), PYTHONPATH=str(REPO))
    env.pop("LUCENT_DEBUG", None)
    return subprocess.run([sys.executable, "main.py", *args], cwd=str(REPO), env=env, capture_output=True,
                          text=True, timeout=120)


def test_command_line_screenshot_and_errors_carry_no_identifiers(private_study, tmp_path):
    out, config = tmp_path / "out", tmp_path / "config"
    out.mkdir()
    ok = _cli([str(private_study), "--screenshot", str(out / "cli.png"), "--size", "400x300"], config)
    assert ok.returncode == 0, ok.stderr
    # a damaged file of the same patient: the one-line error must not quote the header either
    bad = tmp_path / "bad.dcm"
    data = next(private_study.iterdir()).read_bytes()
    bad.write_bytes(data[: len(data) - 100])
    err = _cli([str(bad), "--screenshot", str(out / "bad.png")], config)
    assert err.returncode == 2 and err.stderr.count("\n") == 1, err.stderr
    texts = {"cli stdout": ok.stdout + err.stdout, "cli stderr": ok.stderr + err.stderr}
    folders = [out] + ([config] if config.exists() else [])
    leaks = _leaks(folders, texts)
    assert not leaks, leaks
