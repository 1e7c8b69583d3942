"""Decode DICOM frames into a preallocated array and apply Rescale Slope/Intercept.

Output dtype policy (``plan_dtype``), chosen once for a whole series:

* slope 1 and intercept 0 everywhere: the stored dtype (uint16 stays uint16);
* slope 1 and integral intercepts: an integer type holding every possible value (int16 when the stored
  bits allow it, e.g. 12-bit CT + (-1024)); when only the actual data can tell (16-bit stored), the data is
  decoded first and narrowed to int16 if it fits, else float32;
* anything else: float32 (``value * slope + intercept``). Never float64.

MONOCHROME1 (0 = white) is inverted after rescaling as ``v' = lo + hi - v`` where [lo, hi] is the range
the stored bits can hold after rescale (e.g. 0..32767 for 15 bits), so high values are white, the dtype is
unchanged, and window centres are mapped the same way (see ``invert_monochrome1``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .dicom_header import DicomHeader
from .errors import LoadError, fail

NATIVE_LE = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}  # explicit and implicit VR little endian


@dataclass(frozen=True)
class DtypePlan:
    """How stored values become output values: ``mode`` is "keep", "int" (add intercept) or "float"."""

    dtype: np.dtype
    mode: str
    decide_after: bool = False  # 16-bit stored: narrow to int16 or widen to float32 once data is known


def stored_dtype(h: DicomHeader) -> np.dtype:
    """Numpy dtype of the decoded stored values (before rescale)."""
    if h.pixel_keyword == "FloatPixelData":
        return np.dtype(np.float32)
    if h.pixel_keyword == "DoubleFloatPixelData":
        return np.dtype(np.float64)
    nbytes = {1: 1, 8: 1, 16: 2, 32: 4}.get(h.bits_allocated, 2)
    return np.dtype(f"{'i' if h.signed else 'u'}{nbytes}")


def stored_range(h: DicomHeader) -> tuple[int, int]:
    """Smallest and largest value BitsStored can hold."""
    bits = max(1, min(h.bits_stored, h.bits_allocated))
    if h.signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def plan_dtype(headers: list[DicomHeader]) -> DtypePlan:
    """The output dtype and rescale mode for frames described by ``headers`` (see module docstring)."""
    h0 = headers[0]
    base = stored_dtype(h0)
    slopes = {h.slope for h in headers}
    inters = {h.intercept for h in headers}
    _check_rescale_fits(h0, base, slopes, inters)
    if base.kind == "f" or h0.samples > 1:
        if slopes == {1.0} and inters == {0.0}:
            return DtypePlan(
                base if base.itemsize <= 4 else np.dtype(np.float32),
                "keep" if base.itemsize <= 4 else "float",
            )
        return DtypePlan(np.dtype(np.float32), "float")
    if slopes == {1.0} and inters == {0.0}:
        return DtypePlan(base, "keep")
    if slopes == {1.0} and all(float(b).is_integer() and abs(b) < 2**31 for b in inters):
        lo, hi = stored_range(h0)
        lo, hi = lo + int(min(inters)), hi + int(max(inters))
        for cand in (np.int16, np.int32):
            info = np.iinfo(cand)
            if info.min <= lo and hi <= info.max and np.dtype(cand).itemsize >= base.itemsize:
                if cand is np.int32 and base.itemsize == 2:
                    break  # 16-bit stored: decide from the data rather than doubling memory
                return DtypePlan(np.dtype(cand), "int")
        if base.itemsize == 2:
            return DtypePlan(base, "int", decide_after=True)
    return DtypePlan(np.dtype(np.float32), "float")


def _check_rescale_fits(h0: DicomHeader, base: np.dtype, slopes: set[float], inters: set[float]) -> None:
    """Raise a clear :class:`LoadError` when RescaleSlope/Intercept would turn stored values into numbers beyond
    32-bit float (a damaged header: ``RescaleIntercept 1e300`` would otherwise load as an image of infinities)."""
    big = float(np.finfo(np.float32).max)
    lo, hi = stored_range(h0) if base.kind != "f" else (-1.0, 1.0)
    for slope in slopes:
        for intercept in inters:
            ends = (slope * lo + intercept, slope * hi + intercept)
            if not all(np.isfinite(v) and abs(v) < big for v in (slope, intercept, *ends)):
                raise fail(h0.path, f"rescale out of range (RescaleSlope {slope:g}, RescaleIntercept {intercept:g}): "
                                    "the pixel values would not fit a 32-bit float; the header is damaged")


def frame_decode_options(h: DicomHeader) -> dict:
    """Keyword options for pydicom's ``Decoder.as_array`` when the source is a file positioned at the value."""
    opts = dict(
        rows=h.rows,
        columns=h.columns,
        samples_per_pixel=h.samples,
        bits_allocated=h.bits_allocated,
        bits_stored=h.bits_stored,
        pixel_representation=1 if h.signed else 0,
        photometric_interpretation=h.photometric,
        number_of_frames=h.frames,
        pixel_keyword=h.pixel_keyword,
    )
    if h.samples > 1:
        opts["planar_configuration"] = h.planar
    return opts


def can_read_natively(h: DicomHeader) -> bool:
    """True when frames are plain little-endian bytes we can read straight into the output array."""
    return (
        h.transfer_syntax in NATIVE_LE
        and h.samples == 1
        and h.bits_allocated in (8, 16, 32)
        and h.pixel_keyword == "PixelData"
        and h.pixel_offset is not None
    )


def read_native_frame(h: DicomHeader, index: int, out: np.ndarray) -> None:
    """Read frame ``index`` of ``h`` into ``out`` (same itemsize as stored, C-contiguous) from disk."""
    nbytes = h.rows * h.columns * stored_dtype(h).itemsize
    try:
        with open(h.path, "rb") as f:
            f.seek(h.pixel_offset + index * nbytes)
            got = f.readinto(memoryview(out.reshape(-1).view(np.uint8)))
    except OSError as exc:
        raise fail(h.path, f"cannot read pixel data ({exc.strerror or type(exc).__name__})") from None
    if got != nbytes:
        raise fail(h.path, "truncated DICOM file (pixel data is incomplete)")
    if h.signed and h.bits_stored < h.bits_allocated:
        _sign_extend(out.view(stored_dtype(h)), h.bits_stored)


def _sign_extend(a: np.ndarray, bits: int) -> None:
    shift = a.dtype.itemsize * 8 - bits
    np.left_shift(a, shift, out=a)
    np.right_shift(a, shift, out=a)


def decode_frame(h: DicomHeader, index: int) -> np.ndarray:
    """Frame ``index`` of ``h`` decoded by pydicom (and pylibjpeg plugins): (rows, cols[, samples]).

    Colour YBR data comes back as RGB, as pydicom does by default.
    """
    from pydicom.pixels import get_decoder  # imported here: plain series never need it

    if h.pixel_offset is None:
        raise fail(h.path, "DICOM file has no pixel data")
    try:
        decoder = get_decoder(_uid(h))
    except NotImplementedError:
        raise unsupported(h) from None
    if not decoder.is_available:
        raise unsupported(h)
    try:
        with open(h.path, "rb") as f:
            f.seek(h.pixel_offset)
            arr, _ = decoder.as_array(f, index=index, **frame_decode_options(h))
    except LoadError:
        raise
    except (EOFError, ValueError, IndexError) as exc:
        if "truncat" in str(exc).lower() or "end of" in str(exc).lower() or isinstance(exc, EOFError):
            raise fail(h.path, "truncated DICOM file (pixel data is incomplete)") from None
        raise _decode_error(h, exc) from None
    except Exception as exc:  # plugins raise RuntimeError and friends
        raise _decode_error(h, exc) from None
    except BaseException as exc:  # a Rust codec's panic (pyo3 PanicException) is a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise _decode_error(h, exc) from None
    return arr


def check_encapsulated_complete(h: DicomHeader) -> int | None:
    """LoadError when an encapsulated (compressed) pixel stream ends before its items do.

    Some codecs (libjpeg) decode a cut-off stream without complaint and return a partly blank image, so the
    item lengths are walked up to the sequence delimiter first: an item running past the end of the file,
    or a missing delimiter, means the file was truncated. Returns the number of fragments after the basic
    offset table (None when not encapsulated or not walkable).
    """
    try:
        encapsulated = _uid(h).is_encapsulated
    except ValueError:  # not a transfer syntax UID at all: the decoder lookup reports it
        return None
    if h.pixel_offset is None or not encapsulated:
        return None
    try:
        with open(h.path, "rb") as f:
            size = f.seek(0, 2)
            pos = h.pixel_offset
            items = 0
            while True:
                f.seek(pos)
                head = f.read(8)
                if len(head) < 8:
                    break
                group, elem, length = struct.unpack("<HHI", head)
                if (group, elem) == (0xFFFE, 0xE0DD):
                    return max(0, items - 1)
                if (group, elem) != (0xFFFE, 0xE000):
                    return None  # not an item: leave the judgement to the decoder
                items += 1
                pos += 8 + length
                if pos > size:
                    break
    except OSError as exc:
        raise fail(h.path, f"cannot read pixel data ({exc.strerror or type(exc).__name__})") from None
    raise fail(h.path, "truncated DICOM file (pixel data is incomplete)")


def unsupported(h: DicomHeader) -> LoadError:
    """LoadError "<path>: unsupported transfer syntax <name>"."""
    return fail(h.path, f"unsupported transfer syntax {_uid(h).name}")


def _uid(h: DicomHeader):  # noqa: ANN202 - a pydicom UID, whose module is imported only here
    from pydicom.uid import UID

    return UID(h.transfer_syntax)


def _decode_error(h: DicomHeader, exc: Exception) -> LoadError:
    uid = _uid(h)
    if uid.is_compressed:
        text = str(exc).lower()
        if "unsupported" in text or "not supported" in text or "no plugin" in text or "precision" in text:
            return unsupported(h)
        kind = getattr(exc, "type_name", type(exc).__name__)
        return fail(
            h.path, f"cannot decode {uid.name} pixel data, the file may be corrupt ({kind})"
        )
    return fail(h.path, f"corrupt pixel data ({type(exc).__name__})")


def store(raw: np.ndarray, out: np.ndarray, slope: float, intercept: float, mode: str) -> None:
    """Write ``raw`` stored values into ``out`` applying the rescale ``mode`` (see :class:`DtypePlan`)."""
    if mode == "float":
        np.multiply(raw, np.float32(slope), out=out, casting="unsafe")
        if intercept:
            out += np.float32(intercept)
        return
    if raw.dtype != out.dtype:
        np.copyto(out, raw, casting="unsafe")
    elif raw is not out:
        out[...] = raw
    if mode == "int" and intercept:
        out += out.dtype.type(int(intercept))


def load_frame_into(h: DicomHeader, index: int, out: np.ndarray, plan: DtypePlan) -> None:
    """Decode frame ``index`` of ``h`` into the output slice ``out`` following ``plan``."""
    sdt = stored_dtype(h)
    mode = "keep" if plan.decide_after else plan.mode
    if can_read_natively(h) and mode != "float" and out.dtype.itemsize == sdt.itemsize:
        # same bit pattern: stored uint16 holding < 2**15 is the same number in int16
        read_native_frame(h, index, out.view(sdt))
        if mode == "int" and h.intercept:
            out += out.dtype.type(int(h.intercept))
        return
    if can_read_natively(h):
        raw = np.empty((h.rows, h.columns), dtype=sdt)
        read_native_frame(h, index, raw)
    else:
        raw = decode_frame(h, index)
    if raw.shape != out.shape:
        raise fail(h.path, f"frame size {raw.shape} differs from the series ({out.shape})")
    store(raw, out, h.slope, h.intercept, mode)


def finish_deferred(arr: np.ndarray, headers_intercept: list[float]) -> np.ndarray:
    """For ``decide_after`` plans: ``arr`` holds stored 16-bit values (intercept not yet added).

    Returns int16 when every value + its intercept fits, else a float32 copy. ``headers_intercept`` gives the
    intercept of each k slice (slope is 1).
    """
    inter = np.asarray(headers_intercept, dtype=np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo + inter.min() >= -32768 and hi + inter.max() <= 32767 and hi <= 32767 and lo >= -32768:
        out = arr.view(np.int16)
        for k, b in enumerate(inter):
            if b:
                out[k] += np.int16(b)
        return out
    out = np.empty(arr.shape, dtype=np.float32)
    for k, b in enumerate(inter):
        np.add(arr[k], np.float32(b), out=out[k], casting="unsafe")
    return out


def invert_monochrome1(arr: np.ndarray, lo: float, hi: float) -> None:
    """In place ``v ← lo + hi − v``: MONOCHROME1 (high = black) becomes high = white; dtype unchanged."""
    if arr.dtype.kind == "f":
        np.subtract(arr.dtype.type(lo + hi), arr, out=arr)
    else:
        total = int(lo + hi)
        info = np.iinfo(arr.dtype)
        if info.min <= total <= info.max:
            np.subtract(arr.dtype.type(total), arr, out=arr, casting="unsafe")
        else:  # pragma: no cover - exotic ranges
            arr[...] = (np.int64(total) - arr.astype(np.int64)).clip(info.min, info.max)
