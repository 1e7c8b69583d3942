"""Engines panel: the engines that apply to the open study, their model card and a Run button."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engines.base import Engine

#: Shown after the name of an engine whose weights do not beat their baseline on held-out data.
NOT_VALIDATED = "(not validated)"


class EnginesPanel(QWidget):
    """Lists ``engines``; the selected one shows its card; Run emits ``run_requested(engine)``."""

    run_requested = Signal(object)

    def __init__(self, card_text: Callable[[Engine], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.card_text = card_text
        self.engines: list[Engine] = []
        lay = QVBoxLayout(self)
        self.hint = QLabel("Open a study to see the engines that apply to it.")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show_card)
        self.list.itemDoubleClicked.connect(lambda _item: self.run_selected())
        lay.addWidget(self.list, 1)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(False)
        lay.addWidget(self.card, 2)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run_selected)
        lay.addWidget(self.run_button)
        self.set_engines([])

    def set_engines(self, engines: list[Engine], study_kind: str = "") -> None:
        self.engines = list(engines)
        self.list.clear()
        for e in self.engines:
            validated, summary = e.validation()
            item = QListWidgetItem(e.title + ("  (takes a text query)" if e.takes_query else "")
                                   + ("" if validated else f"  {NOT_VALIDATED}"))
            item.setToolTip(f"{e.paper}\n{summary}")
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            self.list.addItem(item)
        if study_kind:
            self.hint.setText(f"{len(self.engines)} engine(s) apply to this {study_kind}."
                              if self.engines else f"No engine applies to this {study_kind}.")
        self.list.setCurrentRow(0 if self.engines else -1)
        self.run_button.setEnabled(bool(self.engines))
        self._show_card(self.list.currentRow())

    def selected(self) -> Engine | None:
        row = self.list.currentRow()
        return self.engines[row] if 0 <= row < len(self.engines) else None

    def _show_card(self, _row: int) -> None:
        engine = self.selected()
        if engine is None:
            self.card.setMarkdown("")
            return
        validated, summary = engine.validation()
        banner = f"**{'Validated' if validated else 'Not validated'}:** {summary}\n\n"
        self.card.setMarkdown(banner + self.card_text(engine))

    def run_selected(self) -> None:
        engine = self.selected()
        if engine is not None:
            self.run_requested.emit(engine)
