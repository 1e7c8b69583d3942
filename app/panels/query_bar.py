"""Query bar: type a finding ("left lower lobe consolidation"), press Enter, get a grounding heatmap.

Keeps a history (most recent first) that the window stores in the settings; choosing a past query from the
drop-down asks it again. Each query's map goes to the engine's one query layer (see :func:`app.results.add_result`).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

MAX_HISTORY = 30


class QueryBar(QWidget):
    """Emits ``query_submitted(text)`` for a non-empty query and remembers it."""

    query_submitted = Signal(str)

    def __init__(self, history: list[str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QLabel("Find:"))
        self.box = QComboBox()
        self.box.setEditable(True)
        self.box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.box.setMinimumWidth(320)
        self.box.lineEdit().setPlaceholderText("type a finding… (e.g. right pleural effusion)")
        self.box.addItems(history or [])
        # Enter on a text the history holds, or a click in the drop-down, activates that item; Enter on a new
        # text activates nothing (no insert policy), so returnPressed submits it.
        self.box.activated.connect(self._chosen)
        self.box.lineEdit().returnPressed.connect(self._submit_new)
        self.box.setCurrentIndex(-1)
        lay.addWidget(self.box, 1)
        self.button = QPushButton("Ground")
        self.button.clicked.connect(self.submit)
        lay.addWidget(self.button)
        self.target = QLabel("")
        self.target.setStyleSheet("color: #888;")
        lay.addWidget(self.target)

    @property
    def history(self) -> list[str]:
        return [self.box.itemText(i) for i in range(self.box.count())]

    def set_target(self, engine_title: str | None) -> None:
        """Say which engine answers queries for the open study (disable when none does)."""
        self.target.setText(f"→ {engine_title}" if engine_title else "no query engine for this study")
        self.box.setEnabled(engine_title is not None)
        self.button.setEnabled(engine_title is not None)

    def _chosen(self, index: int) -> None:
        self.box.setEditText(self.box.itemText(index))
        self.submit()

    def _submit_new(self) -> None:
        if self.box.findText(" ".join(self.box.currentText().split())) < 0:
            self.submit()

    def submit(self) -> None:
        text = " ".join(self.box.currentText().split())
        if not text:
            return
        idx = self.box.findText(text)
        if idx >= 0:
            self.box.removeItem(idx)
        self.box.insertItem(0, text)
        while self.box.count() > MAX_HISTORY:
            self.box.removeItem(self.box.count() - 1)
        self.box.setCurrentIndex(0)
        self.query_submitted.emit(text)
