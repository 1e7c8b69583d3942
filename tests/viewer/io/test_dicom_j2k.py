"""JPEG 2000 frames decoded by imagecodecs (threads, no GIL) equal pydicom's decoding, value for value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.io import dicom_j2k
from viewer.io.dicom_header import read_header
from viewer.io.dicom_pixels import decode_frame

pytestmark = pytest.mark.skipif(dicom_j2k.jpeg2k_decode is None, reason="imagecodecs is not installed")


def j2k_headers(shared: Path) -> list:
    out = []
    for p in sorted((shared / "dicom").rglob("*")):
        if not p.is_file() or p.suffix in (".md", ".csv", ".nii", ".gz", ".json"):
            continue
        h = read_header(p)
        if h.transfer_syntax in dicom_j2k.J2K_SYNTAXES:
            out.append(h)
    return out


def test_same_values_as_pydicom(shared_data: Path) -> None:
    hs = j2k_headers(shared_data)
    if not hs:
        pytest.skip("no JPEG 2000 DICOM under ../shared/data/dicom")
    taken = 0
    for h in hs:
        if not dicom_j2k.handles(h):
            assert h.frames > 1 or h.samples > 1
            continue
        fast = dicom_j2k.decode_j2k_frame(h)
        assert fast is not None, h.path  # the plain case must not fall back
        ref = decode_frame(h, 0)
        assert fast.dtype == ref.dtype and np.array_equal(fast, ref), h.path
        taken += 1
    assert taken >= 21  # the 20-slice CT and the single-frame MR/radiograph


def test_series_loads_the_same_without_imagecodecs(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viewer.io import load_volume

    ct = shared_data / "dicom" / "ct_series"
    if not ct.exists():
        pytest.skip("CT series missing")
    fast = load_volume(ct)
    monkeypatch.setattr(dicom_j2k, "jpeg2k_decode", None)
    slow = load_volume(ct)
    assert fast.array.dtype == slow.array.dtype and np.array_equal(fast.array, slow.array)
    assert np.array_equal(fast.affine, slow.affine)


def test_odd_item_structure_is_left_to_pydicom() -> None:
    assert dicom_j2k._codestream(b"") is None
    assert dicom_j2k._codestream(b"\xfe\xff\x00\xe0\x00\x00\x00\x00") is None  # BOT only, no delimiter
    bot = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    item = b"\xfe\xff\x00\xe0\x04\x00\x00\x00ABCD"
    end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    assert dicom_j2k._codestream(bot + item + item + end) == b"ABCDABCD"
    assert dicom_j2k._codestream(bot + b"\xfe\xff\x00\xe0\xff\x00\x00\x00AB" + end) is None  # runs past the end
