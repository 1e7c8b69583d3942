"""The fast header scanner gives exactly what pydicom gives, and hands every unusual file back to pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from viewer.io.dicom_fastscan import SCANNED, scan_header
from viewer.io.dicom_header import HEAD_BYTES, DicomHeader, _read, read_header
from viewer.io.dicom_metadata import dicom_metadata

from .dicom_factory import write_series

FIELDS = ("transfer_syntax", "series_uid", "modality", "rows", "columns", "frames", "samples", "bits_allocated",
          "bits_stored", "signed", "photometric", "pixel_spacing", "slope", "intercept", "instance",
          "pixel_offset", "pixel_keyword", "little_endian", "enhanced", "planar")


def _plain(value: object) -> object:
    """A value as plain Python (pydicom's DSfloat, IS, PersonName and MultiValue → float, int, str, list)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return "nan" if value != value else float(value)  # NaN compares unequal to itself
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    return str(value).strip()


def assert_same_header(fast: DicomHeader, slow: DicomHeader) -> None:
    """Same record, same values by keyword and same Volume metadata, without parsing the fast file's data set."""
    for f in FIELDS:
        assert getattr(fast, f) == getattr(slow, f), f
    for f in ("position", "orientation"):
        a, b = getattr(fast, f), getattr(slow, f)
        assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), f
    for kw in sorted(SCANNED - {"SeriesNumber"}):  # SeriesNumber stays text (it only names a series)
        assert _plain(fast.get(kw)) == _plain(slow.get(kw)), kw
    assert dicom_metadata(fast, "x") == dicom_metadata(slow, "x")
    assert fast.dataset is None


def test_matches_pydicom_on_every_shared_dicom(shared_data: Path) -> None:
    files = [p for p in sorted((shared_data / "dicom").rglob("*")) if p.is_file() and p.suffix not in (".md", ".csv")
             and "dcm2niix" not in str(p)]
    if not files:
        pytest.skip("no DICOM files under ../shared/data/dicom")
    scanned = 0
    for p in files:
        fast, slow = _read(p, fast=True), _read(p, fast=False)
        if fast.dataset is None:
            scanned += 1
            assert_same_header(fast, slow)
            assert fast.get("Manufacturer") == slow.ds.get("Manufacturer")  # other values: the data set is parsed
            assert fast.dataset is not None
    assert scanned >= 25  # the 20-slice CT (no SeriesInstanceUID: named by folder) and the misc single frames


def test_nested_sequences_and_implicit_vr(tmp_path: Path) -> None:
    """Undefined-length sequences nested two deep (with a Pixel Data inside an item, as icon images have) are
    skipped; implicit VR files are read; the values match pydicom's."""
    arr = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    paths = write_series(tmp_path / "s", arr, affine, shuffle=False)
    for n, p in enumerate(paths[:2]):
        ds = pydicom.dcmread(p)
        inner = Dataset()
        inner.CodeValue = "T-D1100"
        icon = Dataset()
        icon.Rows, icon.Columns = 2, 2
        icon.PixelData = b"\0" * 8
        icon["PixelData"].VR = "OW"
        item = Dataset()
        item.ConceptNameCodeSequence = Sequence([inner])
        item.IconImageSequence = Sequence([icon])
        ds.ReferencedImageSequence = Sequence([item, Dataset()])
        if n == 1:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(p, enforce_file_format=True, implicit_vr=n == 1, little_endian=True)
        fast, slow = _read(p, fast=True), _read(p, fast=False)
        assert fast.dataset is None, "the scanner should take this file"
        assert_same_header(fast, slow)
        assert fast.transfer_syntax == (ImplicitVRLittleEndian if n == 1 else pydicom.uid.ExplicitVRLittleEndian)


def test_unusual_files_go_to_pydicom(tmp_path: Path) -> None:
    arr = np.zeros((2, 4, 4), np.int16)
    p = write_series(tmp_path / "s", arr, np.eye(4), shuffle=False)[0]
    good = p.read_bytes()
    assert scan_header(good[:HEAD_BYTES]) is not None
    assert scan_header(good[:400]) is None  # cut before the pixel data
    assert scan_header(good[128:]) is None  # no preamble
    assert good.count(b"1.2.840.10008.1.2.1\0") == 1
    big = good.replace(b"1.2.840.10008.1.2.1\0", ExplicitVRBigEndian.encode() + b"\0")
    assert scan_header(big) is None  # big endian: only pydicom reads it
    ds = pydicom.dcmread(p)
    ds.NumberOfFrames = 2
    multi = tmp_path / "multi.dcm"
    ds.save_as(multi, enforce_file_format=True)
    assert scan_header(multi.read_bytes()) is None
    ds = pydicom.dcmread(p)
    ds.RescaleSlope = ""  # an empty value: pydicom decides the default
    empty = tmp_path / "empty.dcm"
    ds.save_as(empty, enforce_file_format=True)
    assert scan_header(empty.read_bytes()) is None and read_header(empty).slope == 1.0


def test_text_that_depends_on_the_character_set_goes_to_pydicom(tmp_path: Path) -> None:
    """Non-ASCII bytes and ISO 2022 escape sequences are decoded by pydicom (SpecificCharacterSet)."""
    p = write_series(tmp_path / "s", np.zeros((1, 4, 4), np.int16), np.eye(4), shuffle=False)[0]
    ds = pydicom.dcmread(p)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    latin = tmp_path / "latin.dcm"
    ds.save_as(latin, enforce_file_format=True)
    assert scan_header(latin.read_bytes()) is None
    assert dicom_metadata(read_header(latin), "x")["patient_name"] == "Müller^Jürgen"
    escaped = latin.read_bytes().replace(b"ISO_IR 100", b"ISO 2022IR6").replace("Müller".encode("latin-1"),
                                                                                  b"\x1b(BMxller")
    assert scan_header(escaped) is None

