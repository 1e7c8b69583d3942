"""Job status in the status bar: what runs, its progress and elapsed time, Cancel, and error details."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QWidget


class JobStatus(QWidget):
    """One line for the current job; ``cancel_requested(job_id)`` when Cancel is pressed. Its height is fixed, so
    the window's layout does not jump when a job starts or ends."""

    cancel_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setFixedWidth(160)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self._cancel)
        self.details = QPushButton("Details…")
        self.details.clicked.connect(self._show_details)
        for w in (self.label, self.bar, self.cancel, self.details):
            lay.addWidget(w)
        # as tall as with the bar and buttons shown, always: the status bar (and the views above it) must not
        # change height when a job starts or ends
        self.setFixedHeight(max(w.sizeHint().height() for w in (self.label, self.bar, self.cancel, self.details)))
        self.job_id: int | None = None
        self._error: tuple[str, str] | None = None
        self.idle()

    def idle(self) -> None:
        self.job_id = None
        self.bar.hide()
        self.cancel.hide()
        if self._error is None:
            self.details.hide()
            self.label.setText("")

    def running(self, job_id: int, title: str, fraction: float, message: str, elapsed_s: float,
                queued: int = 0) -> None:
        self.job_id = job_id
        self._error = None
        self.details.hide()
        more = f" (+{queued} queued)" if queued else ""
        self.label.setText(f"{title}: {message} · {elapsed_s:.1f} s{more}")
        self.bar.setValue(round(100 * fraction))
        self.bar.show()
        self.cancel.show()

    def failed(self, message: str, details: str) -> None:
        self._error = (message, details)
        self.label.setText(f"⚠ {message}")
        self.details.show()
        self.bar.hide()
        self.cancel.hide()

    def _cancel(self) -> None:
        if self.job_id is not None:
            self.cancel_requested.emit(self.job_id)

    def _show_details(self) -> None:
        if self._error is None:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Engine error", self._error[0], QMessageBox.StandardButton.Ok,
                          self)
        box.setDetailedText(self._error[1])
        box.open()
