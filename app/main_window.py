"""The main window: menus from :mod:`app.actions`, the study views, drag and drop, recent files.

Engines, exports and annotation tools have their own controllers that the window owns
(:mod:`app.engine_controller`, :mod:`app.export_controller`, :mod:`app.annotation_controller`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QWidget,
)

import viewer.views  # noqa: F401  (configures pyqtgraph once)
from app.actions import build_menus, install_shortcuts_over_text
from app.annotation_controller import TOOLS, AnnotationController
from app.autosave import Autosaver, autosave_path
from app.export_controller import ExportController
from app.loading import DEMO_STUDY, open_document
from app.panels.layer_panel import LayerPanel
from app.panels.pickers import ComparePicker, SeriesPicker
from app.screenshot import ExportOptions
from app.settings import Settings
from viewer.io.errors import LoadError
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer
from viewer.model.presentation import shared_value_range
from viewer.model.window_level import window_for
from viewer.views.study_view import StudyView

DISCLAIMER = "Research software — not for clinical use."


class MainWindow(QMainWindow):
    """Lucent's main window. ``document`` is the open study (None until one is opened)."""

    def __init__(self, settings: Settings | None = None, layout: str = "mpr") -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.layout_name = layout
        self.document: Document | None = None
        self.study_view: StudyView | None = None
        self.actions_by_id: dict[str, QAction] = {}
        self.setWindowTitle("Lucent")
        self.setAcceptDrops(True)
        self.resize(1280, 900)
        self._readout = QLabel("")
        self.statusBar().addPermanentWidget(self._readout)
        self.statusBar().showMessage(DISCLAIMER)
        self._empty = QLabel("Open a study: File ▸ Open, or drop files here.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(self._empty)
        self.undo_stack = QUndoStack(self)
        self.layer_panel = LayerPanel(self.undo_stack)
        self._add_dock("Layers", self.layer_panel)
        from app.browser import StudyBrowser

        self.browser = StudyBrowser(open_series=self.open_series,
                                    hide_names=bool(self.settings.get("browser_hide_names", False)),
                                    settings=self.settings)
        self.browser.hide_names_changed.connect(lambda on: self.settings.set("browser_hide_names", bool(on)))
        self.browser_dock = self._add_dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.browser_dock.hide()  # View ▸ Study Browser (Ctrl+B); shown on import
        from app.engine_controller import EngineController

        self.engines = EngineController(self)
        engines_dock = self._add_dock("Engines", self.engines.engines_panel)
        self.results_dock = self._add_dock("Results", self.engines.results_panel)
        self.tabifyDockWidget(engines_dock, self.results_dock)
        engines_dock.raise_()
        self.engines.results_panel_shown = self.results_dock.raise_
        self.statusBar().addPermanentWidget(self.engines.job_status)  # stays visible during messages
        self.annotation_tools = AnnotationController(self)
        self.exports = ExportController(self)
        self._build_menus()
        self.autosaver = Autosaver(self)
        self.autosaver.view_state = self.view_state

    def _add_dock(self, title: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # ---- menus ---------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        def handler(action_id: str):
            name = f"on_{action_id}"
            found = (getattr(owner, name, None) for owner in (self, self.annotation_tools, self.exports))
            return next((h for h in found if h is not None), None) or self._preset_handler(action_id)

        self.actions_by_id, menus = build_menus(self, self.menuBar(), handler)
        install_shortcuts_over_text()
        file_menu = menus["File"]
        self.recent_menu = QMenu("Open &Recent", file_menu)
        file_menu.insertMenu(self.actions_by_id["add_image"], self.recent_menu)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        crosshair = self.actions_by_id["toggle_crosshair"]
        crosshair.setCheckable(True)
        crosshair.setChecked(True)
        self.tool_group = QActionGroup(self)
        toolbar = self.addToolBar("Tools")
        toolbar.setObjectName("toolbar_tools")
        for name in TOOLS:
            action = self.actions_by_id[f"tool_{name}"]
            action.setCheckable(True)
            self.tool_group.addAction(action)
            toolbar.addAction(action)
        self.actions_by_id["tool_crosshair"].setChecked(True)
        query_toolbar = self.addToolBar("Query")
        query_toolbar.setObjectName("toolbar_query")
        query_toolbar.addWidget(self.engines.query_bar)

    def _preset_handler(self, action_id: str):
        name = action_id.removeprefix("preset_")
        return lambda: self.apply_preset(name)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_paths([p]))

    # ---- opening ---------------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str | Path], remember: bool = True) -> bool:
        """Open ``paths`` (files/folders) as the current study. Errors are shown, never raised."""
        if len(paths) == 1 and str(paths[0]).endswith(".lucent"):
            return self.open_workspace(paths[0])
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            doc = open_document(paths, choose=self.choose_series)
        except LoadError as exc:
            self.show_error(str(exc))
            return False
        except MemoryError:
            self.show_error("Not enough memory to open this study.")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        if doc is None:
            return False
        saved = autosave_path(doc.source, doc.base.metadata.get("series_uid"))
        if saved.exists() and self._offer_restore(saved):
            return True
        self.set_document(doc)
        if remember:
            self.settings.add_recent(paths[0])
        for warning in doc.base.metadata.get("warnings", []):
            self.statusBar().showMessage(f"Warning: {warning}", 15000)
        return True

    def open_series(self, paths: list, series_uid: str) -> bool:
        """Open one indexed series (from the study browser) by its file list."""
        from viewer.io.index import load_series

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            volume = load_series(paths, series_uid)
        except LoadError as exc:
            self.show_error(str(exc))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        source = str(Path(paths[0]).parent) if len(paths) > 1 else str(paths[0])
        name = volume.metadata.get("series_description") or Path(source).name
        self.set_document(Document(volume, name=str(name), source=source))
        return True

    def on_toggle_browser(self) -> None:
        self.browser_dock.setVisible(not self.browser_dock.isVisible())

    def on_servers(self) -> None:
        self.browser.edit_servers()

    def on_send_results(self) -> None:
        from app.panels.send_dialog import send_results_dialog

        dlg = send_results_dialog(self)
        if dlg is not None:
            dlg.exec()

    def on_add_image(self) -> None:
        if self.document is None:
            return
        paths, _ = QFileDialog.getOpenFileNames(self, "Add image to study", "",
                                                "Images (*.dcm *.nii *.nii.gz);;All files (*)")
        if paths:
            self.add_image(paths)

    def add_image(self, paths: Sequence[str | Path]) -> bool:
        """Add another scan of the study (its own grid) as an image layer, half transparent over the base.

        Multi-scan engines (HLIP) then read all the study's scans together.
        """
        from viewer.model.layers import ImageLayer

        try:
            doc = open_document(paths, choose=self.choose_series)
        except LoadError as exc:
            self.show_error(str(exc))
            return False
        if doc is None or self.document is None:
            return False
        layer = doc.base_layer
        self.document.add_layer(ImageLayer(name=layer.name, volume=layer.volume, window=layer.window, opacity=0.5))
        self.engines.set_document(self.document)
        return True

    def on_import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import folder into the study browser")
        if folder:
            self.browser_dock.show()
            self.browser.import_paths([folder])

    def open_workspace(self, path: str | Path) -> bool:
        """Open a saved workspace (.lucent): the study plus its layers, annotations and display state."""
        from viewer.io.workspace import load_workspace

        try:
            doc, view = load_workspace(path)
        except LoadError as exc:
            self.show_error(str(exc))
            return False
        self.layout_name = view.get("layout", self.layout_name)
        self.set_document(doc)
        if hasattr(self.study_view, "apply_view_state"):
            QApplication.processEvents()  # lay the new views out first: zoom ranges depend on their size
            self.study_view.apply_view_state(view)
        self.settings.add_recent(path)
        return True

    def _offer_restore(self, saved: Path) -> bool:
        """If the autosave holds work (layers or annotations), ask whether to restore it."""
        from viewer.io.workspace import read_workspace_state

        try:
            state = read_workspace_state(saved)
        except LoadError:
            return False
        n_layers, n_ann = len(state["layers"]), len(state["annotations"])
        if not (n_layers or n_ann):
            return False
        question = (f"Lucent kept your work on this study from {state['saved_at'].replace('T', ' ')}: "
                    f"{n_layers} layer(s) and {n_ann} annotation(s). Restore it?")
        return self.ask_restore(question) and self.open_workspace(saved)

    def view_state(self) -> dict:
        """Layout, zoom/pan and 3D camera, saved in workspaces and autosaves."""
        state = {"layout": self.layout_name}
        if hasattr(self.study_view, "view_state"):
            state.update(self.study_view.view_state())
        return state

    def ask_restore(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Restore work?", question)
        return answer == QMessageBox.StandardButton.Yes

    def ask_text(self, title: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Lucent", title)
        return text if ok else None

    def on_save_workspace(self) -> None:
        if self.document is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", "study.lucent", "Lucent workspace (*.lucent)")
        if path:
            try:
                self.save_workspace(path)
            except (OSError, LoadError) as exc:
                self.show_error(f"Could not save the workspace: {exc}")

    def save_workspace(self, path: str | Path) -> None:
        from viewer.io.workspace import save_workspace

        save_workspace(self.document, path, view_state=self.view_state())
        self.statusBar().showMessage(f"Saved {path}", 5000)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.autosaver.save_now()
        self.browser.shutdown()
        self.engines.runner.shutdown()
        super().closeEvent(event)

    def open_demo(self) -> bool:
        return self.open_paths([DEMO_STUDY], remember=False)

    def choose_series(self, candidates: list):
        """Ask which series to open; returns None when the user cancels."""
        dlg = SeriesPicker(candidates, self)
        return dlg.chosen() if dlg.exec() == QDialog.DialogCode.Accepted else None

    def show_error(self, message: str) -> None:
        """A plain message; the window stays usable (non-blocking box)."""
        self.statusBar().showMessage(message, 20000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Lucent", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = message

    def set_document(self, doc: Document) -> None:
        if self.study_view is not None:
            self.study_view.detach()
            self.study_view.deleteLater()
        self.undo_stack.clear()
        self.document = doc
        self.layer_panel.set_document(doc)
        self.autosaver.watch(doc)
        self.engines.set_document(doc)
        self._build_study_view()
        meta = doc.base.metadata
        self.setWindowTitle(f"Lucent — {meta.get('series_description') or Path(doc.source).name}")

    def _build_study_view(self) -> None:
        assert self.document is not None
        layout = self.layout_name if self.layout_name in ("mpr", "single") else "mpr"
        self._install_view(StudyView(self.document, layout=layout))

    def _install_view(self, view: QWidget) -> None:
        self.study_view = view
        self.study_view.hovered.connect(self._readout.setText)
        self.study_view.annotation_drawn.connect(self.annotation_tools.add_annotation)
        self.study_view.annotation_edited.connect(self.annotation_tools.edit_annotation)
        self.study_view.annotation_text_requested.connect(self.annotation_tools.edit_annotation_text)
        tool = self.annotation_tools.current_tool()
        self.study_view.set_tool(None if tool == "crosshair" else tool)
        self.setCentralWidget(self.study_view)
        self.study_view.primary.setFocus()
        self.on_toggle_crosshair()

    # ---- drag and drop ------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # ---- action handlers -----------------------------------------------------------------------------
    def on_open_file(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open image", "",
                                                "Images (*.dcm *.nii *.nii.gz *.png *.jpg *.jpeg *.tif *.tiff"
                                                " *.bmp);;All files (*)")
        if paths:
            self.open_paths(paths)

    def on_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder")
        if folder:
            self.open_paths([folder])

    # ---- export and annotation tools: app.export_controller, app.annotation_controller -------------------
    def save_screenshot(self, path: str | Path, options: ExportOptions | None = None,
                        focused_view_only: bool = False) -> None:
        """Save the views as PNG with a legend footer, as ``options`` say (see
        :meth:`app.export_controller.ExportController.save_screenshot`)."""
        self.exports.save_screenshot(path, options, focused_view_only)

    def export_layer(self, layer, path: str | Path) -> None:
        """Write ``layer``'s volume as NIfTI; errors are shown, not raised."""
        self.exports.export_layer(layer, path)

    def export_seg(self, layer, path: str | Path) -> None:
        """Write the label layer ``layer`` as DICOM-SEG; errors are shown, not raised."""
        self.exports.export_seg(layer, path)

    def set_tool(self, name: str) -> None:
        """Current drawing tool for all views ("crosshair" to navigate)."""
        self.annotation_tools.set_tool(name)

    def current_tool(self) -> str:
        return self.annotation_tools.current_tool()

    def add_annotation(self, annotation) -> None:
        """Add a drawn annotation (undoable); text and arrows ask for their label first."""
        self.annotation_tools.add_annotation(annotation)

    def edit_annotation(self, old, new) -> None:
        """Put an edited copy of ``old`` in its place (undoable)."""
        self.annotation_tools.edit_annotation(old, new)

    def edit_annotation_text(self, annotation) -> None:
        """Ask for a new label for a text or arrow annotation (undoable)."""
        self.annotation_tools.edit_annotation_text(annotation)

    def on_delete_annotations(self) -> None:
        """Delete the annotations shown on the focused (or axial) view's current slice."""
        self.annotation_tools.on_delete_annotations()

    def on_preferences(self) -> None:
        from app.panels.settings_dialog import SettingsDialog
        from engines import registry

        dlg = SettingsDialog(registry.all_engines(), self.settings.get("device", "auto"),
                             self.settings.get("weights", {}), self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            device, weights = dlg.values()
            self.settings.set("device", device)
            self.settings.set("weights", weights)

    def on_undo(self) -> None:
        self.undo_stack.undo()

    def on_redo(self) -> None:
        self.undo_stack.redo()

    def on_quit(self) -> None:
        self.close()

    def on_layout_mpr(self) -> None:
        self._set_layout("mpr")

    def on_layout_single(self) -> None:
        self._set_layout("single")

    def _set_layout(self, name: str) -> None:
        self.layout_name = name
        if self.document is not None:
            self.study_view.detach()
            self._build_study_view()

    def overlay_layers(self) -> list:
        doc = self.document
        return [] if doc is None else [la for la in doc.layers if la is not doc.base_layer]

    def on_compare(self) -> None:
        overlays = self.overlay_layers()
        if len(overlays) < 2:
            self.show_error("Compare needs at least two overlay layers (for example two engines' results).")
            return
        dlg = ComparePicker(overlays, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.compare_layers(dlg.chosen())

    def compare_layers(self, layers: list) -> None:
        """Replace the views by linked viewports, one per layer in ``layers`` (2–4)."""
        from viewer.views.compare_view import CompareView

        if not 2 <= len(layers) <= 4:
            self.show_error("Choose between two and four overlays to compare.")
            return
        shared = shared_value_range(layers)
        if shared is not None:  # one legend scale: the same colours mean the same values in every pane
            for layer in layers:
                if isinstance(layer, HeatmapLayer):
                    layer.value_range = shared
        self.study_view.detach()
        self.layout_name = "compare"
        self._install_view(CompareView(self.document, [[la] for la in layers]))

    def on_reset_zoom(self) -> None:
        if self.study_view is not None:
            self.study_view.reset_zoom()

    def on_toggle_layer(self) -> None:
        self.layer_panel.toggle_selected()

    def on_toggle_crosshair(self) -> None:
        if self.study_view is None:
            return
        show = self.actions_by_id["toggle_crosshair"].isChecked()
        for v in self.study_view.views.values():
            v.h_line.setVisible(show)
            v.v_line.setVisible(show)

    def apply_preset(self, name: str) -> None:
        """Window preset by name ("brain", "lung", …, "auto", "file")."""
        if self.document is None:
            return
        layer = self.document.base_layer
        if not layer.volume.rgb:
            layer.window = window_for(name, layer.volume.metadata, layer.volume.array)

    def on_about(self) -> None:
        QMessageBox.about(self, "About Lucent", f"Lucent 0.1 — radiology viewer with explainable AI.\n\n{DISCLAIMER}")
