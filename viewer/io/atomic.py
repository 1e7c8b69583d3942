"""Atomic file writes: readers see the old file or the new one, never half a file.

Every writer in Lucent (settings, workspaces, NIfTI, DICOM-SEG, screenshots, thumbnails) goes through
:func:`atomic_path`, so a crash or a full disk mid-write leaves any previous file intact and no partial file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` in one step.

    ``suffix`` is the temporary file's ending, for writers that pick a format by name (".nii.gz", ".png").
    On any error the temporary file is removed and the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
