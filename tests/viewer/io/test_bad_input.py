"""Bad input gives a one-line LoadError and leaves the input untouched."""

from __future__ import annotations

import builtins
import resource
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from viewer.io import LoadError, find_series, load_volume

from .dicom_factory import write_series
from .helpers import snapshot


def _one_series(folder: Path) -> list[Path]:
    return write_series(folder, np.zeros((3, 8, 8), np.int16), np.eye(4), shuffle=False)


def _check(path: Path, words: str) -> str:
    before = snapshot(path) if path.is_file() else None
    with pytest.raises(LoadError) as info:
        load_volume(path)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert str(path) in msg
    assert words in msg, msg
    if before is not None:
        assert snapshot(path) == before
    return msg


def test_missing_file(tmp_path):
    _check(tmp_path / "nope.dcm", "not found")


def test_empty_folder(tmp_path):
    _check(tmp_path, "no files")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"hello world, not an image" * 10)
    _check(tmp_path, "no DICOM, NIfTI or image files")


def test_text_file(tmp_path):
    p = tmp_path / "x.dcm"
    p.write_text("just some text\n" * 20)
    _check(p, "not a DICOM, NIfTI or image file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    _check(p, "not a DICOM, NIfTI or image file")


def test_truncated_dicom_pixels(tmp_path):
    p = _one_series(tmp_path / "s")[0]
    data = p.read_bytes()
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(data[: len(data) - 40])
    _check(trunc, "truncated")


def test_truncated_dicom_header(tmp_path):
    p = _one_series(tmp_path / "s")[0]
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(p.read_bytes()[:300])
    with pytest.raises(LoadError) as info:
        load_volume(trunc)
    assert "\n" not in str(info.value) and str(trunc) in str(info.value)


@pytest.mark.parametrize("name", ["emri_small_jpeg_2k_lossless.dcm", "emri_small_RLE.dcm", "MR2_J2KR.dcm"])
def test_truncated_compressed_pixels(tmp_path, shared_data, name):
    data = (shared_data / "dicom" / "misc" / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(LoadError) as info:
        load_volume(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_dicom_without_pixel_data(tmp_path):
    import pydicom

    p = _one_series(tmp_path / "s")[0]
    ds = pydicom.dcmread(p)
    del ds.PixelData
    q = tmp_path / "nopix.dcm"
    ds.save_as(q)
    _check(q, "no pixel data")


def test_unsupported_transfer_syntax(tmp_path):
    src = Path(get_testdata_file("JPEG-lossy.dcm"))
    _check(src, "unsupported transfer syntax JPEG Extended")


def test_permission_denied(tmp_path, monkeypatch):
    p = _one_series(tmp_path / "s")[0]
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)  # root ignores chmod, so simulate it
    _check(p, "permission denied")


def test_corrupt_nifti(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip")
    _check(p, "NIfTI")


def test_truncated_nifti(tmp_path):
    img = nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4))
    full = tmp_path / "full.nii"
    nib.save(img, full)
    trunc = tmp_path / "trunc.nii"
    trunc.write_bytes(full.read_bytes()[:5000])
    _check(trunc, "truncated or corrupt")


def test_giant_nifti_header_is_refused_fast(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 2000))
    hdr.set_data_dtype(np.float32)
    p = tmp_path / "giant.nii"
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    nib.save(img, p)
    raw = bytearray(p.read_bytes())
    raw[:348] = hdr.binaryblock  # the header claims 7.2 TB; the file holds 32 bytes of voxels
    p.write_bytes(bytes(raw))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    msg = _check(p, "GB")
    assert time.perf_counter() - t0 < 2.0
    assert "7200.0 GB" in msg
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100_000  # KiB: under 100 MB


def test_find_series_also_raises_load_error(tmp_path):
    with pytest.raises(LoadError):
        find_series(tmp_path / "missing")


def test_nan_voxels_warn(tmp_path):
    a = np.ones((4, 5, 6), np.float32)
    a[0, 0, :3] = np.nan
    a[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "nan.nii.gz")
    vol = load_volume(tmp_path / "nan.nii.gz")
    assert any(w.startswith("4 voxels are NaN") for w in vol.metadata["warnings"])


def test_rescale_beyond_float32_is_a_message_not_infinities():
    """A damaged RescaleIntercept (1e300, found by fuzzing) used to load as an image of infinities."""
    path = Path(__file__).resolve().parents[2] / "reliability" / "regressions" / "dicom-intercept-1e300.dcm"
    _check(path, "rescale out of range")
