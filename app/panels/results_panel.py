"""Results panel: an engine's class scores as a sorted bar chart, with its notes (limits, disclaimer)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

SCORE_TEXT = "100.0 %"  # the widest score text: the score column is always wide enough for it
#: Bars of scores that are not validated: grey, so they do not read like a validated result.
UNVALIDATED_BAR = "QProgressBar::chunk { background-color: #9a9a9a; }"


class ResultsPanel(QWidget):
    """Shows the latest scores: one row per class, highest first, with a bar and the percentage.

    The score column is sized to its content and always shown in full; finding names take the rest of the width
    and are elided in the middle when the dock is narrow (the full name is the row's tooltip).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.validated = True
        self.title = QLabel("No results yet.")
        self.title.setWordWrap(True)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the dock
        lay.addWidget(self.title)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Finding", "Score"])
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        self.table.setColumnWidth(1, self.score_width())
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #a60;")
        self.notes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.notes)

    def show_scores(self, title: str, scores: dict[str, float], notes: list[str] | None = None,
                    validation: tuple[bool, str] = (True, "")) -> None:
        """Replace the table with ``scores`` (name → probability in [0, 1]) sorted from highest.

        ``validation`` is the engine's ``(validated, one line)`` (:meth:`engines.base.Engine.validation`): scores
        of an engine that does not beat its baseline get "not validated" in the title, grey bars and the line
        first among the notes.
        """
        validated, summary = validation
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        self.validated = validated
        self.title.setText(title if validated else f"{title} — scores not validated")
        self.table.setRowCount(len(ranked))
        for row, (name, p) in enumerate(ranked):
            item = QTableWidgetItem(name)
            item.setToolTip(f"{name}: {100 * p:.1f} %")
            self.table.setItem(row, 0, item)
            bar = QProgressBar()
            bar.setMinimumWidth(self.score_width())
            bar.setRange(0, 1000)
            bar.setValue(round(max(0.0, min(1.0, p)) * 1000))
            bar.setFormat(f"{100 * p:.1f} %")
            bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
            if not validated:
                bar.setStyleSheet(UNVALIDATED_BAR)
            self.table.setCellWidget(row, 1, bar)
        lines = list(notes or [])
        if not validated and summary:
            lines.insert(0, f"Not validated: {summary}")
        self.notes.setText("\n".join(lines))

    def score_width(self) -> int:
        """Pixels the score column needs for "100.0 %" inside a progress bar."""
        return self.fontMetrics().horizontalAdvance(SCORE_TEXT) + 28

    def ranked_names(self) -> list[str]:
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(260, 300)
