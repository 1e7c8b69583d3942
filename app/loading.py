"""Opening studies: paths → series candidates → a Document. Qt-free logic used by the window and CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from viewer.io import find_series
from viewer.io.errors import LoadError
from viewer.model.document import Document

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
DEMO_STUDY = RESOURCES / "demo" / "ct_abdomen"


def candidates_for(paths: Sequence[str | Path]) -> list:
    """All series found under ``paths`` (files or folders). Raises LoadError when none is found."""
    found = []
    errors = []
    for p in paths:
        try:
            found.extend(find_series(p))
        except LoadError as exc:
            errors.append(str(exc))
    if not found:
        raise LoadError(errors[0] if errors else "nothing to open")
    return found


def open_document(paths: Sequence[str | Path], choose: Callable[[list], object | None] | None = None
                  ) -> Document | None:
    """Load the series under ``paths`` into a Document.

    When several series are found, ``choose(candidates)`` picks one (None = the user cancelled → None);
    without ``choose`` the series with the most images is taken.
    """
    cands = candidates_for(paths)
    if len(cands) == 1:
        chosen = cands[0]
    elif choose is not None:
        chosen = choose(cands)
        if chosen is None:
            return None
    else:
        chosen = max(cands, key=lambda c: c.n_files)
    volume = chosen.load()
    name = volume.metadata.get("series_description") or Path(str(paths[0])).name or "image"
    return Document(volume, name=str(name), source=str(paths[0]))
