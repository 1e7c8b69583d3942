"""Export controller: screenshots (PNG file or clipboard) and layers as NIfTI or DICOM-SEG, from the window's
File menu. Errors are shown in the window (:meth:`ExportController.save_screenshot` raises its own)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QWidget

from app.panels.export_dialog import ExportDialog
from app.screenshot import SCREEN, ExportOptions, compose_screenshot, save_widget_png
from viewer.io.errors import LoadError


class ExportController:
    """The window's export handlers (``on_*`` menu actions) and what they write."""

    def __init__(self, window) -> None:  # window: MainWindow
        self.window = window

    def on_export_screenshot(self) -> None:
        if self.window.study_view is None:
            return
        dlg = ExportDialog(self.window)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export screenshot", "lucent.png", "PNG (*.png)")
        if path:
            try:
                self.save_screenshot(path, dlg.options(), focused_view_only=dlg.view_only.isChecked())
            except OSError as exc:
                self.window.show_error(f"Could not save the screenshot: {exc}")

    def save_screenshot(self, path: str | Path, options: ExportOptions | None = None,
                        focused_view_only: bool = False) -> None:
        """Save the views as PNG with a legend footer (what is drawn, engine provenance), as ``options`` say
        (default: native resolution, no crosshair, annotations, no patient identifiers)."""
        if self.window.study_view is None:
            raise RuntimeError("no study is open")
        save_widget_png(self._screenshot_widget(focused_view_only), path, self.window.document,
                        options or ExportOptions())
        self.window.statusBar().showMessage(f"Saved {path}", 5000)

    def _screenshot_widget(self, focused_view_only: bool) -> QWidget:
        if not focused_view_only:
            return self.window.study_view
        views = list(self.window.study_view.views.values())
        return next((v for v in views if v.hasFocus()), self.window.study_view.primary)

    def on_copy_screenshot(self) -> None:
        if self.window.study_view is not None:
            image = compose_screenshot(self.window.study_view, self.window.document, SCREEN)
            QApplication.clipboard().setImage(image)
            self.window.statusBar().showMessage("Screenshot copied to the clipboard", 3000)

    def on_convert_nifti(self) -> None:
        if self.window.document is None:
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Save as NIfTI", "image.nii.gz",
                                              "NIfTI (*.nii.gz *.nii)")
        if path:
            self.export_layer(self.window.document.base_layer, path)

    def on_export_layer(self) -> None:
        layer = self.window.layer_panel.selected_layer()
        if layer is None:
            return
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in layer.name)
        path, _ = QFileDialog.getSaveFileName(self.window, "Export layer", f"{safe}.nii.gz",
                                              "NIfTI (*.nii.gz *.nii)")
        if path:
            self.export_layer(layer, path)

    def export_layer(self, layer, path: str | Path) -> None:
        """Write ``layer``'s volume (its own grid and affine) as NIfTI; errors are shown, not raised."""
        from viewer.io import write_nifti

        try:
            write_nifti(layer.volume, path)
        except LoadError as exc:
            self.window.show_error(str(exc))
            return
        self.window.statusBar().showMessage(f"Exported {layer.name} to {path}", 5000)

    def on_export_seg(self) -> None:
        from viewer.model.layers import LabelsLayer

        layer = self.window.layer_panel.selected_layer()
        if not isinstance(layer, LabelsLayer):
            self.window.show_error("Select a label mask layer to export as DICOM-SEG.")
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export DICOM-SEG", "segmentation.dcm",
                                              "DICOM (*.dcm)")
        if path:
            self.export_seg(layer, path)

    def export_seg(self, layer, path: str | Path) -> None:
        from viewer.io.dicom_seg import write_dicom_seg

        try:
            write_dicom_seg(layer.volume, self.window.document.base, path, layer.label_names, layer.name)
        except (LoadError, OSError) as exc:
            self.window.show_error(str(exc))
            return
        self.window.statusBar().showMessage(f"Exported {layer.name} to {path}", 5000)
