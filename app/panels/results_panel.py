"""Results panel: an engine's class scores as a sorted bar chart, with its notes (limits, disclaimer)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QTableWidget, QVBoxLayout, QWidget


class ResultsPanel(QWidget):
    """Shows the latest scores: one row per class, highest first, with a bar and the percentage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.title = QLabel("No results yet.")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Finding", "Score"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #a60;")
        lay.addWidget(self.notes)

    def show_scores(self, title: str, scores: dict[str, float], notes: list[str] | None = None) -> None:
        """Replace the table with ``scores`` (name → probability in [0, 1]) sorted from highest."""
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        self.title.setText(title)
        self.table.setRowCount(len(ranked))
        for row, (name, p) in enumerate(ranked):
            self.table.setCellWidget(row, 0, QLabel(name))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(max(0.0, min(1.0, p)) * 1000))
            bar.setFormat(f"{100 * p:.1f} %")
            bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setCellWidget(row, 1, bar)
        self.table.resizeColumnToContents(0)
        self.notes.setText("\n".join(notes or []))

    def ranked_names(self) -> list[str]:
        return [self.table.cellWidget(r, 0).text() for r in range(self.table.rowCount())]
