"""Background work for the study browser: imports, thumbnails and network tasks, each in its own QThread.

Both workers open their own :class:`~viewer.io.index.StudyIndex` connection (SQLite connections belong to
one thread); WAL mode lets the panel keep reading while an import writes.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from viewer.io.errors import LoadError
from viewer.io.index import StudyIndex
from viewer.io.thumbnails import DEFAULT_SIZE, thumbnail


class ImportWorker(QObject):
    """Runs :meth:`StudyIndex.import_paths` on a worker thread; :meth:`cancel` may be called from any thread.

    Signals:
        progress(done, total): files handled so far / files found (0, 0 while walking).
        finished(report): the :class:`~viewer.io.index.ImportReport` (``report.cancelled`` after Cancel).
        failed(message): one line, when the database could not be used.
    """

    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, db_path: str | Path, roots: list[str]) -> None:
        super().__init__()
        self.db_path, self.roots = Path(db_path), roots
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the import to stop at the next file; committed files stay indexed."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        """The import itself (called in the worker thread)."""
        self.progress.emit(0, 0)
        try:
            with StudyIndex(self.db_path) as index:
                report = index.import_paths(self.roots, progress=self.progress.emit, cancelled=self._cancel.is_set)
        except Exception as exc:  # noqa: BLE001 - report any failure as one line instead of killing the thread
            self.failed.emit(f"Import failed: {type(exc).__name__}: {exc}")
            return
        self.finished.emit(report)


class ThumbnailWorker(QObject):
    """Makes thumbnails on its thread, one request at a time, newest request first.

    ``request(key, paths)`` may be called from the GUI thread; ``ready(key, png_path)`` is emitted when the
    PNG exists (``png_path`` is '' when the file could not be decoded).
    """

    ready = Signal(str, str)
    _wake = Signal()

    def __init__(self, cache: str | Path | None = None, size: int = DEFAULT_SIZE) -> None:
        super().__init__()
        self.cache, self.size = cache, size
        self._lock = threading.Lock()
        self._queue: list[tuple[str, list[str]]] = []
        self._wake.connect(self._drain)

    def request(self, key: str, paths: list[str]) -> None:
        """Queue a thumbnail (thread-safe); a key already queued moves to the front."""
        with self._lock:
            self._queue = [q for q in self._queue if q[0] != key]
            self._queue.append((key, paths))
        self._wake.emit()

    def clear(self) -> None:
        """Drop the requests not started yet (e.g. when another study is selected)."""
        with self._lock:
            self._queue.clear()

    @Slot()
    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                key, paths = self._queue.pop()
            try:
                png = str(thumbnail(paths, self.cache, self.size))
            except (LoadError, OSError, ValueError, MemoryError):
                png = ""
            self.ready.emit(key, png)


def start_in_thread(worker: QObject, name: str) -> QThread:
    """Move ``worker`` to a new started QThread (quit + wait it when done)."""
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.start()
    return thread


class NetWorker(QObject):
    """Runs one network task ``task(progress, cancelled)`` on its own QThread (search, retrieve, send, echo).

    ``task`` is a plain function from :mod:`viewer.net` land: it calls ``progress(done, total)`` and checks
    ``cancelled()`` between instances; :meth:`cancel` may be called from any thread.

    Signals:
        progress(done, total): forwarded from the task.
        finished(result): what the task returned.
        failed(message): one line — a :class:`~viewer.net.errors.NetError`'s text, or the exception's type.
        cancelled(message): the task stopped on Cancel (``TransferCancelled``'s text).
    """

    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    _go = Signal()

    def __init__(self, task) -> None:  # noqa: ANN001 - Callable[[progress, cancelled], object]
        super().__init__()
        self.task = task
        self._cancel = threading.Event()
        self.thread: QThread | None = None

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def start(self, name: str = "lucent-net") -> QThread:
        """Run the task on a new thread; the thread quits when the task ends (see :attr:`thread`)."""
        self.thread = start_in_thread(self, name)
        self._go.connect(self._run)
        self._go.emit()
        return self.thread

    @Slot()
    def _run(self) -> None:
        from viewer.net import NetError, TransferCancelled

        try:
            result = self.task(self.progress.emit, self._cancel.is_set)
        except TransferCancelled as exc:
            self.cancelled.emit(str(exc))
        except (NetError, LoadError) as exc:  # messages written for the user
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - one line for the user instead of a dead thread
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failed.emit(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        else:
            if self._cancel.is_set():
                self.cancelled.emit("Cancelled")
            else:
                self.finished.emit(result)

    def stop(self) -> None:
        """Cancel, then wait for the thread to end (teardown)."""
        self.cancel()
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait()
            self.thread = None
