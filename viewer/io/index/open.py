"""Open an indexed series from its list of files (the browser hands over paths, not a folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...model.volume import Volume
from ..candidate import SeriesCandidate
from ..dicom_scan import scan_headers
from ..dispatch import _dicom_candidates, find_series
from ..errors import LoadError, add_warning
from ..sniff import sniff


def series_candidates(paths: Sequence[str | Path]) -> list[SeriesCandidate]:
    """Loadable candidates built from exactly these files (DICOM files grouped into series together).

    Unlike :func:`viewer.io.find_series` on each file, the DICOM files are grouped as one set, so that the
    files of one series give one candidate. Raises LoadError when none of the files can be read.
    """
    dicom: list[Path] = []
    others: list[SeriesCandidate] = []
    errors: list[LoadError] = []
    for p in map(Path, paths):
        try:
            kind = sniff(p)
        except OSError as exc:
            errors.append(LoadError(f"{p}: cannot read file ({exc.strerror or type(exc).__name__})"))
            continue
        if kind == "dicom":
            dicom.append(p)
        else:
            try:
                others.extend(find_series(p))
            except LoadError as exc:
                errors.append(exc)
    headers, bad = scan_headers(dicom) if dicom else ([], [])
    errors += bad
    notes = [f"{len(errors)} of the series' files could not be read"] if errors and (headers or others) else []
    found = _dicom_candidates(headers, notes) + others
    if not found:
        raise errors[0] if errors else LoadError("no files to open")
    return found


def load_series(paths: Sequence[str | Path], series_uid: str | None = None) -> Volume:
    """Load the series ``series_uid`` (or, failing a match, the largest one) from ``paths``.

    A series split by orientation or size (``uid#1``, ``uid#2``…) loads its largest part, with a warning.
    """
    cands = series_candidates(paths)
    chosen = [c for c in cands if c.uid == series_uid] or [c for c in cands if c.uid.split("#")[0] == series_uid]
    pool = chosen or cands
    best = max(pool, key=lambda c: (c.n_voxels, c.n_files))
    vol = best.load()
    if len(pool) > 1:
        add_warning(vol.metadata, f"the series holds {len(pool)} stacks; loaded the largest ({best.description})")
    return vol
