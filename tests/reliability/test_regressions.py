"""Reader bugs found by the corpus and the fuzzer, as small direct tests (the byte-level ones are files under
``regressions/``, replayed by ``test_fuzz.py``)."""

from __future__ import annotations

import os
import time

import numpy as np
import pydicom
import pytest

from tests.viewer.io.dicom_factory import write_series
from viewer.io import LoadError, find_series, load_volume


def _series(folder, n=4):
    return write_series(folder, np.arange(n * 64, dtype=np.int16).reshape(n, 8, 8), np.eye(4), shuffle=False)


@pytest.mark.timeout(30)
def test_fifo_in_a_folder_is_skipped_not_opened(tmp_path):
    """open() on a FIFO blocks forever: a folder scan must skip non-regular files (it used to hang)."""
    _series(tmp_path / "s")
    os.mkfifo(tmp_path / "s" / "pipe.dcm")
    t = time.monotonic()
    vol = load_volume(tmp_path / "s")
    assert time.monotonic() - t < 10
    assert vol.shape3d == (4, 8, 8)
    assert any("unreadable" in w for w in vol.metadata["warnings"])


@pytest.mark.timeout(30)
def test_fifo_given_directly_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.dcm")
    with pytest.raises(LoadError, match="not a regular file"):
        find_series(tmp_path / "pipe.dcm")


def test_slices_at_the_same_depth_are_duplicates_not_a_crash(tmp_path):
    """Same orientation, same distance along the normal, different in-plane position: used to divide by a
    zero median step (ValueError: cannot convert float NaN to integer)."""
    paths = _series(tmp_path / "s", 3)
    for n, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = [str(10.0 * n), "0", "0"]  # all at z = 0 (the normal is +z)
        ds.save_as(p)
    vol = load_volume(tmp_path / "s")
    assert vol.is_2d
    assert any("repeat an earlier slice position" in w for w in vol.metadata["warnings"])


def test_truncated_compressed_stream_is_not_shown_half_blank(shared_data, tmp_path):
    """libjpeg decodes a cut-off JPEG Lossless stream without error (the lower part came out black); the
    item lengths are now checked first."""
    src = shared_data / "dicom" / "misc" / "JPGLosslessP14SV1_1s_1f_8b.dcm"
    data = src.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(LoadError, match="truncated"):
        load_volume(cut)


def test_absurd_number_of_frames_in_a_compressed_file_is_refused_at_once(shared_data, tmp_path):
    """NumberOfFrames = 100000 on a 10-frame RLE file used to build 100000 frame records first (5 s)."""
    ds = pydicom.dcmread(shared_data / "dicom" / "misc" / "emri_small_RLE.dcm")
    ds.NumberOfFrames = 100000
    p = tmp_path / "x.dcm"
    ds.save_as(p)
    t = time.monotonic()
    with pytest.raises(LoadError, match="NumberOfFrames|claims"):
        load_volume(p)
    assert time.monotonic() - t < 2


def test_huge_rows_columns_refused_before_allocating(tmp_path):
    p = _series(tmp_path / "s", 1)[0]
    ds = pydicom.dcmread(p)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 100
    ds.save_as(p)
    with pytest.raises(LoadError, match="claims .* GB"):
        load_volume(p)
