"""The command line as a user scripts it: screenshots, conversion, and one-line errors on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def lucent(*args, timeout=120):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_screenshot_of_demo_study(tmp_path):
    out = tmp_path / "demo.png"
    proc = lucent("--screenshot", out, "--size", "640x640", "--preset", "mediastinum")
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    img = np.asarray(Image.open(out).convert("L"))
    assert img.shape[1] == 640 and img.shape[0] > 640  # the views, then the legend footer
    assert img.std() > 20  # an image, not a blank canvas


def test_screenshot_single_layout_and_slice(tmp_path, shared_data):
    out = tmp_path / "flair.png"
    flair = shared_data / "brain_mri/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz"
    proc = lucent(flair, "--screenshot", out, "--layout", "single", "--slice", 80, "--size", "400x400")
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000
    bad = lucent(flair, "--screenshot", out, "--slice", 999)
    assert bad.returncode == 2 and "between 1 and 155" in bad.stderr


@pytest.mark.parametrize("content", [b"hello, this is not an image\n", b""])
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, content):
    bad = tmp_path / "notes.txt"
    bad.write_bytes(content)
    before = bad.read_bytes()
    proc = lucent(bad, "--screenshot", tmp_path / "x.png")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert bad.read_bytes() == before
    assert not (tmp_path / "x.png").exists()


def test_missing_path_and_empty_folder(tmp_path):
    proc = lucent(tmp_path / "nope.dcm", "--screenshot", tmp_path / "x.png")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = lucent("convert", tmp_path / "empty", tmp_path / "x.nii.gz")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_convert_ct_series_matches_dcm2niix(tmp_path, shared_data):
    out = tmp_path / "ct.nii.gz"
    proc = lucent("convert", shared_data / "dicom/ct_series", out)
    assert proc.returncode == 0, proc.stderr
    ours = nib.load(out)
    ref = nib.load(shared_data / "dicom/ct_series_dcm2niix/ct_series.nii.gz")
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))


def test_lucent_console_entry_point(tmp_path):
    exe = Path(sys.executable).parent / "lucent"
    if not exe.exists():
        pytest.skip("the project is not installed in this interpreter's environment (pip install -e .)")
    proc = subprocess.run([str(exe), "convert", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "NIfTI" in proc.stdout
    proc = subprocess.run([str(exe), "infer", "--list-engines"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "multires_cxr" in proc.stdout


@pytest.mark.parametrize("display", [None, ":97"])
def test_no_display_gives_a_plain_message_and_exit_3(display):
    """`lucent` with xcb and no X server: one plain line and exit 3, never Qt's xcb abort."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    if display:
        env["DISPLAY"] = display  # nothing listens there
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lucent: no display"), proc.stderr
    assert "xcb" not in lines[0] and "Aborted" not in proc.stderr
