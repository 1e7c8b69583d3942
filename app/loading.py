"""Opening studies: paths → series candidates → a Document. Qt-free logic used by the window and CLI."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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


_prefetched: dict[tuple[str, ...], Future] = {}


def prefetch(paths: Sequence[str | Path]) -> None:
    """Start reading ``paths`` in a background thread; the next :func:`open_document` of the same paths takes
    the result.

    Called at start-up before Qt is imported: JPEG 2000 frames decode without the GIL, so reading the study
    overlaps the imports. Only a single series is read ahead; when there are several, or anything fails, the
    result is dropped and :func:`open_document` does its usual work (and reports errors) itself.
    """
    fut: Future = Future()
    _prefetched[_key(paths)] = fut

    def work() -> None:
        try:
            cands = candidates_for(paths)
            fut.set_result(cands[0].load() if len(cands) == 1 else None)
        except Exception:  # noqa: BLE001 - open_document reads again and reports the error in its own words
            fut.set_result(None)

    threading.Thread(target=work, name="lucent-prefetch", daemon=True).start()


def _key(paths: Sequence[str | Path]) -> tuple[str, ...]:
    return tuple(str(Path(p)) for p in paths)


def open_document(paths: Sequence[str | Path], choose: Callable[[list], object | None] | None = None
                  ) -> Document | None:
    """Load the series under ``paths`` into a Document.

    When several series are found, ``choose(candidates)`` picks one (None = the user cancelled → None);
    without ``choose`` the series with the most images is taken.
    """
    pending = _prefetched.pop(_key(paths), None)
    _prefetched.clear()  # a read-ahead of other paths is no longer wanted
    volume = pending.result() if pending is not None else None
    if volume is not None:
        return _document(volume, paths)
    cands = candidates_for(paths)
    if len(cands) == 1:
        chosen = cands[0]
    elif choose is not None:
        chosen = choose(cands)
        if chosen is None:
            return None
    else:
        chosen = max(cands, key=lambda c: c.n_files)
    return _document(chosen.load(), paths)


def _document(volume, paths: Sequence[str | Path]) -> Document:  # noqa: ANN001 - a viewer.model Volume
    name = volume.metadata.get("series_description") or Path(str(paths[0])).name or "image"
    return Document(volume, name=str(name), source=str(paths[0]))
