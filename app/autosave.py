"""Autosave: the open study's layers and annotations are saved shortly after every change, so a crash
loses nothing. One workspace file per study in the user data folder, found again when the study is
reopened. Built on :mod:`viewer.io.workspace` (atomic writes).

The debounced saves take a snapshot on the GUI thread and write it (NIfTI compression: about a second for
an engine's full-size layers) on one background thread, so the viewer never freezes while saving;
:meth:`Autosaver.save_now` (closing the window, switching studies) writes and waits.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from viewer.io.errors import LoadError
from viewer.io.workspace import snapshot, write_snapshot
from viewer.model.document import Document

DEBOUNCE_MS = 1500


def autosave_dir() -> Path:
    override = os.environ.get("LUCENT_CONFIG_DIR")
    if override:
        return Path(override) / "autosave"
    from platformdirs import user_data_dir

    return Path(user_data_dir("lucent", appauthor=False)) / "autosave"


def autosave_path(source: str, series_uid: str | None) -> Path:
    """Where the autosave of the study at ``source`` (and series) lives."""
    key = hashlib.sha1(f"{Path(source).resolve()}|{series_uid or ''}".encode()).hexdigest()[:16]
    return autosave_dir() / f"{key}.lucent"


class Autosaver(QObject):
    """Watches one Document and writes its workspace ``DEBOUNCE_MS`` after the last change."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document: Document | None = None
        self.view_state = dict
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.save_in_background)
        self.last_error: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lucent-autosave")
        self._pending: Future | None = None

    def watch(self, document: Document | None) -> None:
        if self.document is not None:
            self._connect(self.document, False)
            if self._timer.isActive():
                self.save_now()
        self.document = document
        if document is not None:
            self._connect(document, True)

    def _connect(self, doc: Document, on: bool) -> None:
        for events in (doc.layers.events, doc.annotations.events):
            for name in ("inserted", "removed", "moved", "changed", "child_event"):
                sig = getattr(events, name)
                sig.connect(self._changed) if on else sig.disconnect(self._changed)

    def _changed(self, *_args) -> None:
        self._timer.start()

    @property
    def path(self) -> Path | None:
        if self.document is None or not self.document.source:
            return None
        return autosave_path(self.document.source, self.document.base.metadata.get("series_uid"))

    def save_now(self) -> None:
        """Write the autosave at once and wait for it (also called before the window closes)."""
        self.save_in_background()
        self.wait()

    def save_in_background(self) -> None:
        """Snapshot the document now; write it on the autosave thread (writes run one after another)."""
        self._timer.stop()
        path = self.path
        if path is None:
            return
        snap = snapshot(self.document, view_state=self.view_state())
        self._pending = self._writer.submit(self._write, snap, path)

    def wait(self) -> None:
        """Block until the last requested save has been written (or has failed: see ``last_error``)."""
        if self._pending is not None:
            self._pending.result()

    def _write(self, snap: tuple, path: Path) -> None:
        try:
            write_snapshot(snap, path)
            self.last_error = None
        except (OSError, LoadError) as exc:  # a full disk must never take the viewer down
            self.last_error = f"autosave failed: {exc}"
