"""Preferences: the compute device for engines and, per engine, a user-supplied weights file.

A user weights file replaces the shipped one for that engine (safetensors only; the engine loads it
strictly and says which key does not match). An empty field means the shipped weights.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.panels.dialogs import ok_cancel
from engines.base import Engine

DEVICES = ("auto", "cpu", "cuda")


class SettingsDialog(QDialog):
    """Edits ``device`` and ``weights`` ({engine id: path}) of the app settings."""

    def __init__(self, engines: list[Engine], device: str, weights: dict[str, str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(device if device in DEVICES else "auto")
        self.device.setToolTip("auto: the GPU when one is available, else the CPU")
        form.addRow("Compute device", self.device)
        self.paths: dict[str, QLineEdit] = {}
        for engine in engines:
            edit = QLineEdit(weights.get(engine.id, ""))
            edit.setPlaceholderText("shipped weights")
            browse = QPushButton("…")
            browse.clicked.connect(lambda _c=False, e=edit: self._browse(e))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(f"{engine.title} weights", row)
            self.paths[engine.id] = edit
        form.addRow(ok_cancel(self))

    def _browse(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "safetensors (*.safetensors)")
        if path:
            edit.setText(path)

    def values(self) -> tuple[str, dict[str, str]]:
        """(device, {engine id: weights path}) with empty paths left out."""
        return self.device.currentText(), {k: e.text().strip() for k, e in self.paths.items() if e.text().strip()}
