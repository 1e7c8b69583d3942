"""Where retrieved instances go: the local library folder, written so that nothing half-done is indexed.

Layout under the library root (default ``<data folder>/library``)::

    .partial/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   while a series is coming in (hidden: never indexed)
    <StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   complete series

Each instance is written to a temporary file and moved into place with ``os.replace``, so a file named after
its SOPInstanceUID is always complete. An interrupted retrieve leaves its ``.partial`` folder; the next
retrieve of the series skips the instances already there (resume). Only when every instance the server lists
is present does the folder move (one rename) to its final place and get indexed.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from io import BytesIO
from pathlib import Path

from ..io.atomic import atomic_path
from ..io.index import data_dir

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def default_library() -> Path:
    """The folder retrieved studies are stored in: ``data_dir() / "library"``."""
    return data_dir() / "library"


def _safe(uid: str) -> str:
    uid = str(uid).strip()
    if not _UID.match(uid) or len(uid) > 64:
        raise ValueError(f"not a DICOM UID: {uid!r}")
    return uid


class SeriesWriter:
    """Collects the instances of one series into the library (thread-safe: a DIMSE SCP calls :meth:`add`).

    Attributes:
        have: SOPInstanceUIDs present (in the final folder or the partial one).
        added: instances written by this writer; ``bytes_written``: their size in bytes.
    """

    def __init__(self, root: str | Path, study_uid: str, series_uid: str) -> None:
        self.root = Path(root)
        self.study_uid, self.series_uid = _safe(study_uid), _safe(series_uid)
        self.partial = self.root / ".partial" / self.series_uid
        self.final = self.root / self.study_uid / self.series_uid
        self._lock = threading.Lock()
        self._drop_leftovers()
        self.have: set[str] = self._listed(self.final) | self._listed(self.partial)
        self.added = 0
        self.bytes_written = 0

    def _drop_leftovers(self) -> None:
        """Remove the temporary files a killed process left in the partial folder (``.<uid>.dcm.*.tmp``)."""
        try:
            for p in self.partial.iterdir():
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)
        except OSError:
            pass

    @staticmethod
    def _listed(folder: Path) -> set[str]:
        try:
            names = [p.name for p in folder.iterdir()]
        except OSError:
            return set()
        return {n[:-4] for n in names if n.endswith(".dcm") and not n.startswith(".")}

    def add(self, sop_uid: str, data: bytes) -> bool:
        """Store one encoded instance (a DICOM file: preamble, meta, data set); False when already present."""
        sop_uid = _safe(sop_uid)
        with self._lock:
            if sop_uid in self.have:
                return False
        with atomic_path(self.partial / f"{sop_uid}.dcm") as tmp:
            tmp.write_bytes(data)
        with self._lock:
            self.have.add(sop_uid)
            self.added += 1
            self.bytes_written += len(data)
        return True

    def add_dataset(self, ds: object) -> bool:
        """Store a pydicom Dataset (as read from a DICOMweb answer) as a DICOM file."""
        import pydicom

        if str(ds.SOPInstanceUID) in self.have:
            return False
        buf = BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        return self.add(str(ds.SOPInstanceUID), buf.getvalue())

    def missing(self, expected: set[str]) -> set[str]:
        with self._lock:
            return set(expected) - self.have

    def finish(self) -> Path:
        """Move the partial folder into place (one rename when the series is new); returns its new path."""
        if not self.partial.is_dir():
            return self.final
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if not self.final.exists():
            os.replace(self.partial, self.final)
        else:
            for f in self.partial.iterdir():
                if f.name.endswith(".dcm"):
                    os.replace(f, self.final / f.name)
            shutil.rmtree(self.partial, ignore_errors=True)
        return self.final
