"""JPEG 2000 frames decoded by imagecodecs, which releases Python's GIL, so that a thread pool decodes a series on
every core without worker processes (pylibjpeg's OpenJPEG holds the GIL).

Only the plain case: one grey frame per file (JPEG 2000 or its lossless-only syntax). The frame's fragments are
read from the encapsulated Pixel Data (after the Basic Offset Table item) and joined into one codestream. The
result is used only when it has the shape and the stored dtype pydicom would return (a codestream whose
signedness disagrees with PixelRepresentation, for one, is left to pydicom's corrections): otherwise
:func:`decode_j2k_frame` returns None and the caller decodes with pydicom.
"""

from __future__ import annotations

import struct

import numpy as np

from .dicom_header import DicomHeader
from .dicom_pixels import stored_dtype
from .errors import fail

J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})  # lossless only; lossy or lossless
ITEM, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)

try:
    from imagecodecs import jpeg2k_decode
except ImportError:  # pragma: no cover - an optional speed-up; pydicom decodes without it
    jpeg2k_decode = None


def handles(h: DicomHeader) -> bool:
    """Whether :func:`decode_j2k_frame` can take this file's frames."""
    return (jpeg2k_decode is not None and h.transfer_syntax in J2K_SYNTAXES and h.frames == 1 and h.samples == 1
            and h.pixel_offset is not None)


def decode_j2k_frame(h: DicomHeader) -> np.ndarray | None:
    """The frame as ``(rows, columns)`` stored values, or None when pydicom should decode it instead."""
    try:
        with open(h.path, "rb") as f:
            f.seek(h.pixel_offset)
            data = f.read()
    except OSError as exc:
        raise fail(h.path, f"cannot read pixel data ({exc.strerror or type(exc).__name__})") from None
    stream = _codestream(data)
    if stream is None:
        return None
    try:
        arr = jpeg2k_decode(stream, numthreads=1)
    except Exception:  # noqa: BLE001 - imagecodecs raises its own error types: pydicom then decides the message
        return None
    if arr.shape != (h.rows, h.columns) or arr.dtype != stored_dtype(h):
        return None
    return arr


def _codestream(data: bytes) -> bytes | None:
    """The fragments after the Basic Offset Table, joined; None when the item structure is not plain."""
    pos, fragments = 0, []
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if (group, elem) == SEQUENCE_END:
            return b"".join(fragments[1:]) if len(fragments) > 1 else None
        if (group, elem) != ITEM or pos + 8 + length > len(data):
            return None
        fragments.append(data[pos + 8:pos + 8 + length])
        pos += 8 + length
    return None
