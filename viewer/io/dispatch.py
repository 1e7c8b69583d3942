"""Find loadable series under a path and load one: :func:`find_series`, :func:`load_volume`.

The reader is chosen by content (:mod:`.sniff`), not by extension: DICOM files often have none.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model.volume import Volume
from .candidate import SeriesCandidate
from .dicom_header import DicomHeader
from .dicom_scan import SeriesGroup, describe, group_series, scan_headers
from .dicom_series import build_volume
from .errors import LoadError, add_warning, fail, read_failure
from .nifti import read_nifti
from .raster import read_raster
from .sniff import sniff

_SKIP_SUFFIXES = (".json", ".txt", ".csv", ".md", ".py", ".xml", ".html", ".pdf", ".zip", ".log", ".tsv")


def find_series(path: str | Path) -> list[SeriesCandidate]:
    """Candidates under ``path`` (a file, or a folder scanned recursively), largest DICOM series first.

    Raises LoadError when nothing loadable is found or the path cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise fail(path, "file or folder not found")
    if path.is_dir():
        return _scan_folder(path)
    if not path.is_file():  # a FIFO would block open(); devices never end
        raise fail(path, "not a regular file")
    kind = _sniff_or_fail(path)
    if kind is None:
        raise fail(path, "not a DICOM, NIfTI or image file")
    if kind == "dicom":
        headers, errors = scan_headers([path])
        if errors:
            raise errors[0]
        return _dicom_candidates(headers, [])
    return [_file_candidate(path, kind)]


def load_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """Load the series ``series_uid`` under ``path``, or the largest one (warning about the others)."""
    candidates = find_series(path)
    if series_uid is not None:
        for c in candidates:
            if c.uid == series_uid:
                return c.load()
        raise fail(path, f"no series with UID {series_uid}")
    best = max(candidates, key=lambda c: (c.n_voxels, c.n_files))
    vol = best.load()
    others = len(candidates) - 1
    if others:
        add_warning(
            vol.metadata,
            f"{path} holds {others} other series; loaded the largest ({best.description})",
        )
    return vol


def _sniff_or_fail(path: Path):
    try:
        return sniff(path)
    except OSError as exc:
        raise read_failure(path, exc) from None


def _file_candidate(path: Path, kind: str) -> SeriesCandidate:
    if kind == "nifti":
        return SeriesCandidate(str(path), f"NIfTI · {path.name}", "OT", 1, lambda: read_nifti(path))
    return SeriesCandidate(str(path), f"image · {path.name}", "OT", 1, lambda: read_raster(path))


def _scan_folder(folder: Path) -> list[SeriesCandidate]:
    files: list[Path] = []
    try:
        for root, dirs, names in os.walk(folder, onerror=_raise_walk_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    except PermissionError:
        raise fail(folder, "permission denied") from None
    files = [f for f in files if not f.name.lower().endswith(_SKIP_SUFFIXES)]
    if not files:
        raise fail(folder, "folder holds no files")
    dicom_paths: list[Path] = []
    others: list[SeriesCandidate] = []
    unreadable = 0
    for f in files:
        if not f.is_file():  # FIFO, socket, device, dangling link: open() could block or never end
            unreadable += 1
            continue
        try:
            kind = sniff(f)
        except OSError:
            unreadable += 1
            continue
        if kind == "dicom":
            dicom_paths.append(f)
        elif kind is not None:
            others.append(_file_candidate(f, kind))
    headers, errors = scan_headers(dicom_paths) if dicom_paths else ([], [])
    notes = []
    if errors or unreadable:
        notes.append(f"{len(errors) + unreadable} unreadable files in {folder} were skipped")
    candidates = _dicom_candidates(headers, notes) + others
    if not candidates:
        if errors:
            raise errors[0]
        raise fail(folder, "no DICOM, NIfTI or image files found")
    return candidates


def _raise_walk_error(exc: OSError) -> None:
    raise exc


def _dicom_candidates(headers: list[DicomHeader], notes: list[str]) -> list[SeriesCandidate]:
    out = []
    for g in group_series(headers):
        out.append(
            SeriesCandidate(
                uid=g.uid,
                description=describe(g),
                modality=g.headers[0].modality,
                n_files=len(g.headers),
                loader=_group_loader(g, notes),
                n_voxels=g.n_voxels,
            )
        )
    return out


def _group_loader(group: SeriesGroup, notes: list[str]):
    def load() -> Volume:
        source = str(group.headers[0].path.parent if len(group.headers) > 1 else group.headers[0].path)
        try:
            return build_volume(group.headers, warnings=group.warnings + notes, source=source)
        except LoadError:
            raise
        except MemoryError:
            raise LoadError(f"{source}: not enough memory to load this series") from None

    return load
