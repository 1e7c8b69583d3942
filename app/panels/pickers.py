"""Pickers the window asks with: which series of a folder to open, which overlays to compare."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QVBoxLayout, QWidget

from app.panels.dialogs import ok_cancel


class SeriesPicker(QDialog):
    """Lets the user choose one of several series found in a folder."""

    def __init__(self, candidates: list, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.candidates = candidates
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"{len(candidates)} series were found. Open which one?"))
        self.list = QListWidget()
        self.list.addItems([c.description for c in candidates])
        self.list.setCurrentRow(max(range(len(candidates)), key=lambda i: candidates[i].n_files))
        self.list.itemDoubleClicked.connect(self.accept)
        lay.addWidget(self.list)
        lay.addWidget(ok_cancel(self, QDialogButtonBox.StandardButton.Open))

    def chosen(self):
        return self.candidates[self.list.currentRow()]


class ComparePicker(QDialog):
    """Pick 2–4 overlay layers to compare side by side (the shown ones, top first, are ticked to start)."""

    def __init__(self, layers: list, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare overlays")
        self.layers = list(reversed(layers))  # top first, as in the layer list
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Tick 2 to 4 overlays; each gets its own linked viewport."))
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        ticked = compare_preselection(self.layers)
        for n, layer in enumerate(self.layers):
            self.list.addItem(layer.name)
            item = self.list.item(n)
            item.setToolTip(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer in ticked else Qt.CheckState.Unchecked)
        lay.addWidget(self.list)
        lay.addWidget(ok_cancel(self))

    def chosen(self) -> list:
        return [la for n, la in enumerate(self.layers)
                if self.list.item(n).checkState() == Qt.CheckState.Checked]


def compare_preselection(layers_top_first: list) -> list:
    """The overlays to tick at first: the shown ones, top first, up to 4; hidden ones fill up to 2."""
    shown = [la for la in layers_top_first if la.visible][:4]
    hidden = [la for la in layers_top_first if not la.visible]
    return shown + hidden[: max(0, 2 - len(shown))]
