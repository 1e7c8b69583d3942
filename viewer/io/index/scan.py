"""Walk folders and read what the index needs from each file: DICOM headers only, NIfTI/image headers.

A DICOM file is parsed with ``pydicom.dcmread(stop_before_pixels=True, specific_tags=TAGS)``: the pixel data
is never read. NIfTI files are indexed from their header (nibabel loads lazily), 2D images from Pillow's lazy
open. Every problem becomes an :class:`Entry` with ``error`` set — reading never raises.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..dicom_header import is_multi_value
from ..sniff import sniff
from .records import NOT_AN_IMAGE

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

TAGS = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
    "SOPInstanceUID", "InstanceNumber", "NumberOfFrames",
]  # fmt: skip
HEAD = 352


@dataclass(frozen=True, slots=True)
class FileStat:
    """A file found by :func:`walk`: absolute path, size in bytes, modification time in ns."""

    path: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Entry:
    """What one file contributes to the index; ``error`` is set (and the rest empty) for unreadable files.

    Keys: ``patient_key`` groups a patient (ID, name and birth date); ``study_uid``/``series_uid`` are the
    DICOM UIDs, or for files without them a stable stand-in (``"no-uid:…"``, ``"file:<path>"``).
    """

    stat: FileStat
    kind: str = ""
    error: str | None = None
    patient_key: str = ""
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    modality: str = ""
    sop_uid: str | None = None
    instance: int | None = None
    frames: int = 1


def walk(roots: Iterable[str | Path], skip: Callable[[str], bool] = lambda p: False,
         cancelled: Callable[[], bool] = lambda: False) -> Iterator[FileStat]:
    """Every regular file under ``roots`` (files or folders, recursively), hidden names and ``skip`` excluded.

    Symbolic links to files are followed; links to folders are not (no loops). Unreadable folders and files
    that vanish during the walk are passed over. Stops early when ``cancelled()`` turns true.
    """
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            st = _stat(root)
            if st is not None and not skip(root):
                yield st
            continue
        stack = [root]
        while stack:
            if cancelled():
                return
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for e in entries:
                if e.name.startswith(".") or skip(e.path):
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        subdirs.append(e.path)
                    elif e.is_file():
                        s = e.stat()
                        yield FileStat(e.path, s.st_size, s.st_mtime_ns)
                except OSError:
                    continue
            stack.extend(reversed(subdirs))


def _stat(path: str) -> FileStat | None:
    try:
        s = os.stat(path)
    except OSError:
        return None
    return FileStat(path, s.st_size, s.st_mtime_ns)


def read_entry(stat: FileStat) -> Entry:
    """Read ``stat.path``'s header into an :class:`Entry` (never raises; failures set ``error``)."""
    path = stat.path
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD)
            kind = sniff(Path(path), head)
            if kind == "dicom":
                f.seek(0)
                return _dicom_entry(stat, f)
    except OSError as exc:
        return Entry(stat, error=f"cannot read file ({exc.strerror or type(exc).__name__})")
    if kind == "nifti":
        return _nifti_entry(stat)
    if kind == "image":
        return _image_entry(stat)
    return Entry(stat, error=NOT_AN_IMAGE)


def _dicom_entry(stat: FileStat, fp: BinaryIO) -> Entry:
    import pydicom  # here, not at module level: the study browser is built at start-up, before any import

    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=TAGS, force=True)
        problem = _pixel_problem(fp, ds, stat.size)
        if problem:
            return Entry(stat, kind="dicom", error=problem)
        return _from_dataset(stat, ds)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt input; never crash an import
        return Entry(stat, kind="dicom", error=f"corrupt DICOM header ({type(exc).__name__})")


def _pixel_problem(fp: BinaryIO, ds: Dataset, size: int) -> str | None:
    """Why the file cannot be an image, judged at the position where ``stop_before_pixels`` stopped.

    pydicom silently returns a partial dataset for a file cut inside its header, so the check is here: the
    next element must be the pixel data, and its declared length must fit in the file.
    """
    pos = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return "DICOM header truncated, or no pixel data (not an image)"
    implicit, little = ds.original_encoding
    endian = ">" if little is False else "<"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if group != 0x7FE0 or elem not in (0x0008, 0x0009, 0x0010):
        return "DICOM header truncated, or no pixel data (not an image)"
    if implicit:
        length, start = struct.unpack(endian + "I", head[4:8])[0], pos + 8
    else:
        if len(head) < 12:
            return "DICOM file truncated in its pixel data"
        length, start = struct.unpack(endian + "I", head[8:12])[0], pos + 12
    if length != 0xFFFFFFFF and start + length > size:
        return "DICOM file truncated in its pixel data"
    return None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if is_multi_value(value):
        value = "\\".join(str(v) for v in value)
    return " ".join(str(value).split())


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        if is_multi_value(value):
            value = value[0]
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError, IndexError):
        return None


def _from_dataset(stat: FileStat, ds: Dataset) -> Entry:
    meta = getattr(ds, "file_meta", None)
    sop = _text(ds, "SOPInstanceUID") or (_text(meta, "MediaStorageSOPInstanceUID") if meta else "")
    modality = _text(ds, "Modality")
    study_uid = _text(ds, "StudyInstanceUID")
    series_uid = _text(ds, "SeriesInstanceUID")
    if not (sop or modality or study_uid or series_uid):
        return Entry(stat, kind="dicom", error="DICOM file without study, series, instance UID or modality")
    folder = os.path.dirname(stat.path)
    pid, name, birth = _text(ds, "PatientID"), _text(ds, "PatientName"), _text(ds, "PatientBirthDate")
    number = _int_or_none(ds, "SeriesNumber")
    description = _text(ds, "SeriesDescription")
    if not study_uid:  # anonymised exports: one study per parent folder of the series folder and patient
        study_uid = f"no-uid:{os.path.dirname(folder)}|{pid}|{name}|{_text(ds, 'StudyDate')}"
    if not series_uid:  # as viewer.io.dicom_header does: folder + number + description + modality
        series_uid = f"no-uid:{folder}|{'' if number is None else number}|{description}|{modality}"
    return Entry(
        stat,
        kind="dicom",
        patient_key=f"{pid}|{name}|{birth}",
        patient_id=pid,
        patient_name=name,
        birth_date=birth,
        sex=_text(ds, "PatientSex"),
        study_uid=study_uid,
        study_date=_text(ds, "StudyDate")[:8],
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession=_text(ds, "AccessionNumber"),
        series_uid=series_uid,
        series_number=number,
        series_description=description,
        modality=modality or "OT",
        sop_uid=sop or None,
        instance=_int_or_none(ds, "InstanceNumber"),
        frames=max(1, _int_or_none(ds, "NumberOfFrames") or 1),
    )


def _one_file_entry(stat: FileStat, kind: str, modality: str, series_description: str, frames: int) -> Entry:
    """A NIfTI or image file as its own study with one series, keyed by its path."""
    name = os.path.basename(stat.path)
    key = f"file:{stat.path}"
    return Entry(stat, kind=kind, patient_key="||", study_uid=key, study_description=name, series_uid=key,
                 series_description=series_description, modality=modality, frames=frames)


def _nifti_entry(stat: FileStat) -> Entry:
    try:
        import nibabel as nib

        img = nib.load(stat.path)  # lazy: reads the header only
        shape = tuple(int(n) for n in img.header.get_data_shape())
        descrip = img.header.get("descrip")
        descrip = descrip.item().decode("latin-1", "replace").strip("\x00 ") if descrip is not None else ""
    except Exception as exc:  # noqa: BLE001 - nibabel/gzip raise many types on corrupt input
        return Entry(stat, kind="nifti", error=f"corrupt NIfTI header ({type(exc).__name__})")
    size = "×".join(str(n) for n in shape)
    frames = shape[2] if len(shape) >= 3 else 1
    return _one_file_entry(stat, "nifti", "OT", f"NIfTI {size}" + (f" · {descrip}" if descrip else ""), frames)


def _image_entry(stat: FileStat) -> Entry:
    try:
        from PIL import Image

        with Image.open(stat.path) as im:  # lazy: decodes nothing yet
            w, h, mode, fmt = im.width, im.height, im.mode, im.format or "image"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt input
        return Entry(stat, kind="image", error=f"corrupt image ({type(exc).__name__})")
    colour = mode not in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")
    return _one_file_entry(stat, "image", "XC" if colour else "OT", f"{fmt} {w}×{h}", 1)
