"""Decide which reader handles a file from its first bytes (content first, extension second).

Kinds: ``"dicom"`` (``DICM`` at byte 128, or a dataset without preamble that starts with a group 0002/0008
tag), ``"nifti"`` (``n+1``/``ni1`` magic, also inside gzip, or a ``.nii``/``.nii.gz`` name), ``"image"``
(PNG, JPEG, TIFF, BMP, GIF signatures) or ``None``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Literal

Kind = Literal["dicom", "nifti", "image"]

_IMAGE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF87a", b"GIF89a")
_EXPLICIT_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
    b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
    b"UR", b"US", b"UT", b"UV",
}  # fmt: skip


def sniff(path: Path, head: bytes | None = None) -> Kind | None:
    """The reader kind for ``path`` judged from its first 352 bytes (read here unless ``head`` is given).

    Raises OSError when the file cannot be read (the caller turns it into a LoadError).
    """
    if head is None:
        with open(path, "rb") as f:
            head = f.read(352)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if _is_nifti_header(head):
        return "nifti"
    if head[:2] == b"\x1f\x8b":
        inner = _gunzip_head(path)
        if _is_nifti_header(inner):
            return "nifti"
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if head.startswith(_IMAGE_MAGICS):
        return "image"
    if _looks_like_raw_dicom(head):
        return "dicom"
    return None


def _is_nifti_header(head: bytes) -> bool:
    return (
        len(head) >= 348
        and head[344:348] in (b"n+1\x00", b"ni1\x00")
        and (struct.unpack("<i", head[:4])[0] == 348 or struct.unpack(">i", head[:4])[0] == 348)
    )


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(352)
    except (OSError, EOFError, zlib.error):
        return b""


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM stream without preamble: first tag in group 0002 or 0008, explicit VR or a sane length."""
    if len(head) < 8:
        return False
    group, elem = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008) or elem > 0x0100:
        return False
    if head[4:6] in _EXPLICIT_VRS:
        return True
    length = struct.unpack("<I", head[4:8])[0]
    return length < 1024  # implicit VR little endian: first elements are short
