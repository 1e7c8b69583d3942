"""Fast path for DICOM headers: walk a Part-10 file's top-level elements in memory and decode only the values
the series builder needs, without building a pydicom Dataset (about ten times quicker than ``dcmread``).

It handles the common case only: a ``DICM`` preamble, a little-endian data set (implicit or explicit VR: every
native and compressed transfer syntax except big-endian and deflated), one frame, a SeriesInstanceUID, and pixel
data inside the bytes read. Anything else — a length running past the bytes, an unexpected VR, a value that does
not parse cleanly, a multi-frame or enhanced object — makes :func:`scan_header` return None, and the caller parses
the file with pydicom instead, so damaged or unusual files keep pydicom's checks and messages.

Values come back in DICOM's units (positions in patient LPS mm) as plain Python types.
"""

from __future__ import annotations

from struct import unpack_from

PIXEL_DATA = 0x7FE00010
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
MAX_DEPTH = 16

#: tag → (keyword, VR) of the values read; the VR is checked against explicit-VR files.
WANTED: dict[int, tuple[str, bytes]] = {
    0x00080016: ("SOPClassUID", b"UI"),
    0x00080060: ("Modality", b"CS"),
    0x0008103E: ("SeriesDescription", b"LO"),
    0x00200011: ("SeriesNumber", b"IS"),
    0x0020000E: ("SeriesInstanceUID", b"UI"),
    0x00200013: ("InstanceNumber", b"IS"),
    0x00200032: ("ImagePositionPatient", b"DS"),
    0x00200037: ("ImageOrientationPatient", b"DS"),
    0x00280002: ("SamplesPerPixel", b"US"),
    0x00280004: ("PhotometricInterpretation", b"CS"),
    0x00280006: ("PlanarConfiguration", b"US"),
    0x00280008: ("NumberOfFrames", b"IS"),
    0x00280010: ("Rows", b"US"),
    0x00280011: ("Columns", b"US"),
    0x00280030: ("PixelSpacing", b"DS"),
    0x00280100: ("BitsAllocated", b"US"),
    0x00280101: ("BitsStored", b"US"),
    0x00280103: ("PixelRepresentation", b"US"),
    0x00281052: ("RescaleIntercept", b"DS"),
    0x00281053: ("RescaleSlope", b"DS"),
    # for Volume.metadata and the series picker (so that a plain series needs no pydicom at all)
    0x00080020: ("StudyDate", b"DA"),
    0x00081030: ("StudyDescription", b"LO"),
    0x00100010: ("PatientName", b"PN"),
    0x00100020: ("PatientID", b"LO"),
    0x00100030: ("PatientBirthDate", b"DA"),
    0x00180015: ("BodyPartExamined", b"CS"),
    0x00180050: ("SliceThickness", b"DS"),
    0x00181164: ("ImagerPixelSpacing", b"DS"),
    0x0020000D: ("StudyInstanceUID", b"UI"),
    0x00281050: ("WindowCenter", b"DS"),
    0x00281051: ("WindowWidth", b"DS"),
}
#: The keywords a scanned header knows (absent from its values = absent from the file's top level).
SCANNED = frozenset(kw for kw, _vr in WANTED.values())
#: Their presence sends the file to pydicom (enhanced multi-frame objects need the full data set).
ENHANCED = frozenset({0x52009229, 0x52009230})
TEXT = frozenset({0x0008103E, 0x00200011})


class _Bail(Exception):
    """Not the common case: let pydicom parse this file."""


def scan_header(buf: bytes) -> tuple[str, dict[str, object], int] | None:
    """``(transfer syntax UID, {keyword: value}, byte offset of the Pixel Data value)`` or None (see module).

    Values: US → int, IS → int, DS → list of float, strings (UI, CS, LO, PN, DA) → str without padding;
    SeriesNumber and SeriesDescription stay text (they only name a series that has no UID). Text must be plain
    ASCII without escape sequences (other bytes depend on SpecificCharacterSet, which pydicom handles).
    """
    try:
        ts, pos = _meta_group(buf)
        if ts == IMPLICIT_LE:
            implicit = True
        elif ts == EXPLICIT_LE or ts.startswith("1.2.840.10008.1.2.4.") or ts == "1.2.840.10008.1.2.5":
            implicit = False
        else:
            return None  # big endian, deflated, private: pydicom knows them
        raw: dict[int, bytes] = {}
        pixel_offset = _walk(buf, pos, implicit, raw, 0)
        if pixel_offset is None:
            return None
        values = {WANTED[tag][0]: _value(data, b"LO" if tag in TEXT else WANTED[tag][1]) for tag, data in raw.items()}
    except (_Bail, ValueError, UnicodeDecodeError):
        return None
    if "Rows" not in values or "Columns" not in values:
        return None
    if int(values.get("NumberOfFrames", 1)) != 1:  # type: ignore[call-overload]
        return None
    return ts, values, pixel_offset


def _meta_group(buf: bytes) -> tuple[str, int]:
    """The transfer syntax from the file meta group (always explicit VR little endian) and where it ends."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Bail
    pos, ts = 132, None
    while pos + 8 <= len(buf) and unpack_from("<H", buf, pos)[0] == 0x0002:
        tag, _vr, length, vpos = _element(buf, pos, implicit=False)
        if length == UNDEFINED or vpos + length > len(buf):
            raise _Bail
        if tag == 0x00020010:
            ts = buf[vpos:vpos + length].rstrip(b"\0 ").decode("ascii")
        pos = vpos + length
    if not ts:
        raise _Bail
    return ts, pos


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR or None, value length, value position) of the element starting at ``pos``."""
    if pos + 8 > len(buf):
        raise _Bail
    group, elem = unpack_from("<HH", buf, pos)
    tag = (group << 16) | elem
    if implicit or group == 0xFFFE:  # items and delimiters never carry a VR
        return tag, None, unpack_from("<I", buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in LONG_VRS:
        if pos + 12 > len(buf):
            raise _Bail
        return tag, vr, unpack_from("<I", buf, pos + 8)[0], pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Bail
    return tag, vr, unpack_from("<H", buf, pos + 6)[0], pos + 8


def _walk(buf: bytes, pos: int, implicit: bool, raw: dict[int, bytes] | None, depth: int) -> int | None:
    """Walk elements from ``pos``. Top level (depth 0): collect the wanted values into ``raw`` and return the
    Pixel Data value offset (None if the bytes end first). Inside an item: return the position after its
    delimiter."""
    while pos < len(buf):
        tag, vr, length, vpos = _element(buf, pos, implicit)
        if depth > 0 and tag == ITEM_END:
            return vpos
        if (tag >> 16) == 0xFFFE:
            raise _Bail
        if depth == 0 and tag == PIXEL_DATA:
            if vr is not None and vr not in (b"OB", b"OW"):
                raise _Bail
            return vpos
        if depth == 0 and tag in ENHANCED:
            raise _Bail
        if length == UNDEFINED:
            if vr not in (None, b"SQ"):
                raise _Bail
            pos = _skip_sequence(buf, vpos, implicit, depth + 1)
            continue
        if vpos + length > len(buf):
            raise _Bail
        if raw is not None and tag in WANTED:
            if vr is not None and vr != WANTED[tag][1]:
                raise _Bail
            raw[tag] = buf[vpos:vpos + length]
        pos = vpos + length
    if depth > 0:
        raise _Bail
    return None


def _skip_sequence(buf: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Position after the delimiter of an undefined-length sequence whose first item starts at ``pos``."""
    if depth > MAX_DEPTH:
        raise _Bail
    while True:
        tag, _vr, length, vpos = _element(buf, pos, implicit=True)
        if tag == SEQUENCE_END:
            return vpos
        if tag != ITEM:
            raise _Bail
        if length == UNDEFINED:
            pos = _walk(buf, vpos, implicit, None, depth)  # type: ignore[assignment]
        elif vpos + length > len(buf):
            raise _Bail
        else:
            pos = vpos + length


def _value(data: bytes, vr: bytes) -> object:
    if vr == b"US":
        if len(data) < 2 or len(data) % 2:
            raise _Bail
        return unpack_from("<H", data)[0]
    text = data.decode("ascii").strip(" \0")
    if vr in (b"UI", b"CS", b"LO", b"PN", b"DA"):
        if "\\" in text or "\x1b" in text:
            raise _Bail
        return text
    parts = [p.strip() for p in text.split("\\")]
    if vr == b"IS":
        if len(parts) != 1:
            raise _Bail
        return int(parts[0])
    return [float(p) for p in parts]  # DS
