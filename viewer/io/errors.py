"""Errors and warnings that readers report to the user.

A :class:`LoadError` message is one plain line that names the file and says what is wrong with it, e.g.
``"/data/x.dcm: not a DICOM, NIfTI or image file"``. It never carries a traceback or a newline, so the app can
show it as is in a status bar or dialog.

Non-fatal problems (missing slices, gantry tilt, NaN voxels…) are :class:`LoadWarning` strings collected in
``volume.metadata["warnings"]`` (a ``list[str]``).
"""

from __future__ import annotations

from pathlib import Path


class LoadError(Exception):
    """A file or folder could not be loaded; ``str(err)`` is one line a user understands."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class LoadWarning(str):
    """A one-line, non-fatal problem found while loading (a plain ``str`` subclass)."""

    __slots__ = ()

    def __new__(cls, message: str) -> LoadWarning:
        return super().__new__(cls, one_line(message))


def one_line(text: object) -> str:
    """``text`` as a single stripped line (newlines and runs of spaces collapsed)."""
    return " ".join(str(text).split())


def fail(path: str | Path, what: str) -> LoadError:
    """``LoadError("<path>: <what>")``, for ``raise fail(path, "…")``."""
    return LoadError(f"{path}: {what}")


def read_failure(path: str | Path, exc: OSError) -> LoadError:
    """The :class:`LoadError` for an OS error while reading ``path``, in the words every reader uses: permission
    denied, file not found, a folder, or the system's own reason."""
    if isinstance(exc, PermissionError):
        return fail(path, "permission denied")
    if isinstance(exc, FileNotFoundError):
        return fail(path, "file not found")
    if isinstance(exc, IsADirectoryError):
        return fail(path, "is a folder, not a file")
    return fail(path, f"cannot read file ({exc.strerror or type(exc).__name__})")


def add_warning(metadata: dict, message: str) -> None:
    """Append a :class:`LoadWarning` to ``metadata["warnings"]`` (created when absent), without duplicates."""
    warnings = metadata.setdefault("warnings", [])
    w = LoadWarning(message)
    if w not in warnings:
        warnings.append(w)
