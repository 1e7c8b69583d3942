"""The screenshot export dialog."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QLabel, QVBoxLayout, QWidget

from app.panels.dialogs import ok_cancel
from app.screenshot import ExportOptions


class ExportDialog(QDialog):
    """Screenshot options: resolution, crosshair and annotations, the whole layout or the focused view,
    patient identifiers (off)."""

    RESOLUTION_TITLES = {"native": "Native (one pixel per image pixel)", "2x": "2× the screen", "1x": "As on screen"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export screenshot")
        lay = QVBoxLayout(self)
        self.resolution_box = QComboBox()
        for key, title in self.RESOLUTION_TITLES.items():
            self.resolution_box.addItem(title, key)
        lay.addWidget(QLabel("Resolution"))
        lay.addWidget(self.resolution_box)
        self.crosshair = QCheckBox("Draw the crosshair")
        self.annotations = QCheckBox("Draw annotations (rulers, ROIs, arrows, texts)")
        self.annotations.setChecked(True)
        self.view_only = QCheckBox("Only the focused view (else the whole layout)")
        self.include_patient = QCheckBox("Include patient name, ID and birth date")
        for box in (self.crosshair, self.annotations, self.view_only, self.include_patient):
            lay.addWidget(box)
        lay.addWidget(ok_cancel(self))

    def options(self) -> ExportOptions:
        return ExportOptions(resolution=self.resolution_box.currentData(), crosshair=self.crosshair.isChecked(),
                             annotations=self.annotations.isChecked(),
                             include_patient=self.include_patient.isChecked())
