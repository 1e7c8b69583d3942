"""Read one DICOM file's header (no pixels) into a small :class:`DicomHeader` record.

Geometry fields are in DICOM's patient LPS frame, millimetres. The file is opened read-only; its first 64 KiB
go through the fast scanner (:mod:`.dicom_fastscan`), and files it does not take are parsed with
``pydicom.dcmread(stop_before_pixels=True)``. The byte offset of the Pixel Data value is kept so that pixels
can later be read or decoded without parsing the header again; the full pydicom data set of a fast-scanned file
is parsed only when something asks for a value the scanner did not read (:meth:`DicomHeader.get`). pydicom is
imported only when a file needs it, so a plain series loads without it (that keeps start-up quick).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dicom_fastscan import SCANNED, scan_header
from .errors import LoadError, fail, read_failure

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

HEAD_BYTES = 1 << 16
EXPLICIT_BE = "1.2.840.10008.1.2.2"
PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}


@dataclass(eq=False)
class DicomHeader:
    """What the series builder needs from one file; ``ds`` is the pixel-less dataset (for metadata).

    ``dataset`` is None for a fast-scanned file until :attr:`ds` is first read; ``values`` then holds the values
    the scanner decoded, by keyword.

    Attributes:
        position: ImagePositionPatient (LPS mm) of the first voxel, or None.
        orientation: 6 direction cosines (row direction = +i, column direction = +j), or None.
        pixel_spacing: (row spacing, column spacing) in mm = (between rows, between columns); None if
            absent or zero.
        pixel_offset: byte offset of the Pixel Data *value* in the file, or None without pixel data.
    """

    path: Path
    dataset: Dataset | None
    transfer_syntax: str  # the UID
    series_uid: str
    modality: str
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    instance: int
    pixel_offset: int | None
    pixel_keyword: str = "PixelData"
    little_endian: bool = True
    enhanced: bool = False
    planar: int = 0
    extra: dict = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, keyword: str) -> Any:
        """A top-level element's value by keyword, as pydicom gives it (one number for a single-valued DS, a list
        for several); None when absent or damaged (an unknown VR, an unparsable value: optional facts must not
        stop a load). Read from the fast scan's values when it covers the keyword."""
        if self.dataset is None and keyword in SCANNED:
            value = self.values.get(keyword)
            return value[0] if isinstance(value, list) and len(value) == 1 else value
        ds = self.ds
        try:
            return ds.get(keyword)
        except Exception:  # noqa: BLE001 - pydicom converts lazily and raises many types on damaged elements
            return None

    def text(self, keyword: str) -> str:
        """The value of ``keyword`` as stripped text; "" when absent or damaged (a sequence where text belongs,
        nested items that fail pydicom's lazy conversion)."""
        try:
            return str(self.get(keyword) or "").strip()
        except Exception:  # noqa: BLE001 - str() of a damaged pydicom value converts (and fails) lazily
            return ""

    @property
    def ds(self) -> Dataset:
        """The pixel-less pydicom data set (parsed from the file on first use after a fast scan)."""
        if self.dataset is None:
            self.dataset = _read(self.path, fast=False).dataset
        return self.dataset  # type: ignore[return-value]

    @property
    def normal(self) -> np.ndarray | None:
        """Slice normal = row cosine × column cosine (unit vector, LPS), or None without orientation."""
        if self.orientation is None:
            return None
        return np.cross(self.orientation[:3], self.orientation[3:])


def read_header(path: Path) -> DicomHeader:
    """Parse ``path``'s header; raise LoadError when it is not a readable DICOM file."""
    return _read(path, fast=True)


def _read(path: Path, fast: bool) -> DicomHeader:
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)  # one read; most headers end well inside it and parse from memory
            if fast and (scanned := scan_header(head)) is not None:
                return _fast_record(path, *scanned)
            parsed = _parse(io.BytesIO(head), path, complete=len(head) < HEAD_BYTES)
            if parsed is None:  # header longer than the first read (big multi-frame): parse from disk
                f.seek(0)
                parsed = _parse(f, path, complete=True)
        ds, pixel_offset, keyword = parsed
    except OSError as exc:
        raise read_failure(path, exc) from None
    return _record(path, ds, pixel_offset, keyword)


def _fast_record(path: Path, ts: str, v: dict, pixel_offset: int) -> DicomHeader:
    """A header from :func:`~.dicom_fastscan.scan_header`'s values (one plain frame, no data set yet)."""
    header = _header(path, v, None, ts, pixel_offset, "PixelData", enhanced=False)
    header.values = v
    return header


def _parse(fp, path: Path, complete: bool) -> tuple[Dataset, int | None, str] | None:
    """dcmread + pixel offset; None when ``fp`` holds only part of a longer file and that was not enough."""
    import pydicom

    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        pixel_offset, keyword = _pixel_value_offset(fp, ds)
    except Exception as exc:  # noqa: BLE001 - pydicom on damaged bytes raises many types (ValueError,
        # BytesLengthException, NotImplementedError for an unknown VR, struct.error, EOFError…)
        if not complete:
            return None
        raise fail(path, f"corrupt or truncated DICOM header ({type(exc).__name__})") from None
    if pixel_offset is None and not complete:
        return None
    return ds, pixel_offset, keyword


def _record(path: Path, ds: Dataset, pixel_offset: int | None, keyword: str) -> DicomHeader:
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "Rows" not in ds and "SeriesInstanceUID" not in ds and "SOPClassUID" not in ds:
        raise fail(path, "not a DICOM, NIfTI or image file")
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if not ts:
        implicit, little = ds.original_encoding
        ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        if little is False:
            ts = ExplicitVRBigEndian
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    try:
        return _header(path, ds, ds, ts, pixel_offset, keyword, enhanced)
    except Exception as exc:  # noqa: BLE001 - lazily converted elements fail in many ways
        raise fail(path, f"corrupt DICOM header ({type(exc).__name__}: {exc})") from None


def _header(path: Path, v: Dataset | dict, dataset: Dataset | None, ts: str, pixel_offset: int | None,
            keyword: str, enhanced: bool) -> DicomHeader:
    """The record from element values by keyword (a pydicom Dataset or the fast scanner's dict), with defaults."""
    return DicomHeader(
        path=path,
        dataset=dataset,
        transfer_syntax=ts,
        series_uid=_series_key(v, path),
        modality=str(v.get("Modality", "") or "OT"),
        rows=int(v.get("Rows", 0) or 0),
        columns=int(v.get("Columns", 0) or 0),
        frames=_int(v.get("NumberOfFrames", 1), 1),
        samples=_int(v.get("SamplesPerPixel", 1), 1),
        bits_allocated=_int(v.get("BitsAllocated", 16), 16),
        bits_stored=_int(v.get("BitsStored", v.get("BitsAllocated", 16)), 16),
        signed=_int(v.get("PixelRepresentation", 0), 0) == 1,
        photometric=str(v.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip(),
        position=_vector(v.get("ImagePositionPatient"), 3),
        orientation=_orientation(v.get("ImageOrientationPatient")),
        pixel_spacing=parse_spacing(v.get("PixelSpacing")),
        slope=_float(v.get("RescaleSlope", 1.0), 1.0) or 1.0,
        intercept=_float(v.get("RescaleIntercept", 0.0), 0.0),
        instance=_int(v.get("InstanceNumber", 0), 0),
        pixel_offset=pixel_offset,
        pixel_keyword=keyword,
        little_endian=ts != EXPLICIT_BE,
        enhanced=enhanced,
        planar=_int(v.get("PlanarConfiguration", 0), 0),
    )


def _series_key(ds: Dataset | dict, path: Path) -> str:
    """SeriesInstanceUID, or for anonymised files without one a key from folder, number and description."""
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    parts = [str(ds.get(k, "") or "").strip() for k in ("SeriesNumber", "SeriesDescription", "Modality")]
    return f"no-uid:{path.parent}|{'|'.join(parts)}"


def _pixel_value_offset(fp, ds: Dataset) -> tuple[int | None, str]:
    """Offset of the pixel data value: ``fp`` is left at the pixel element's tag by stop_before_pixels."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None, "PixelData"
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    keyword = PIXEL_TAGS.get((group << 16) | elem)
    if keyword is None:
        return None, "PixelData"
    if implicit:
        return start + 8, keyword
    return start + 12, keyword  # OB/OW/OF/OD: tag 4 + VR 2 + reserved 2 + length 4


def is_multi_value(value: object) -> bool:
    """Whether ``value`` holds several values: a list, or pydicom's MultiValue (a Sequence), but not text."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _single(value):
    """The first of several values, else the value itself."""
    return value[0] if is_multi_value(value) else value


def _int(value, default: int) -> int:
    try:
        return int(_single(value))
    except (TypeError, ValueError, IndexError):
        return default


def _float(value, default: float) -> float:
    try:
        v = float(_single(value))
        return v if np.isfinite(v) else default
    except (TypeError, ValueError, IndexError):
        return default


def _vector(value, n: int) -> np.ndarray | None:
    try:
        if value is None or len(value) != n:
            return None
        v = np.array([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if np.all(np.isfinite(v)) else None


def _orientation(value) -> np.ndarray | None:
    v = _vector(value, 6)
    if v is None:
        return None
    r, c = v[:3], v[3:]
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 1e-6 or nc < 1e-6 or abs(np.dot(r / nr, c / nc)) > 0.1:
        return None
    return np.concatenate([r / nr, c / nc])


def parse_spacing(value) -> tuple[float, float] | None:
    v = _vector(value, 2)
    if v is None or np.any(v <= 0):
        return None
    return float(v[0]), float(v[1])


def header_or_none(path: Path) -> DicomHeader | LoadError:
    """``read_header`` for folder scans: the LoadError is returned, not raised."""
    try:
        return read_header(path)
    except LoadError as exc:
        return exc
