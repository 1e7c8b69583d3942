"""StudyView: the views of one Document — a single 2D view, or the 2×2 MPR layout for volumes.

MPR layout: axial top-left, coronal top-right, sagittal bottom-left, 3D bottom-right. The 3D slot holds
whatever widget :meth:`set_3d_widget` gives it (the VTK view), and a plain panel until then.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from viewer.model.document import Document
from viewer.views.slice_view import SliceView

LAYOUTS = ("mpr", "single")
CREATE_3D_DELAY_MS = 150  # after the slice views' first paint


class StudyView(QWidget):
    """All slice views of ``document`` in ``layout`` ("mpr" or "single"; 2D images are always single).

    Signals:
        hovered(str): read-out text from whichever view the mouse is over.
    """

    hovered = Signal(str)
    annotation_drawn = Signal(object)
    annotation_edited = Signal(object, object)
    annotation_text_requested = Signal(object)

    def __init__(self, document: Document, layout: str = "mpr", plane: str = "axial",
                 parent: QWidget | None = None, with_3d: bool = True) -> None:
        """``with_3d``: fill the MPR layout's 3D slot with the VTK view, created just after the slice views
        have painted (importing VTK takes ~0.5 s and must not delay the first frame)."""
        super().__init__(parent)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.document = document
        self._detached = False
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.setStyleSheet("background: #111;")
        self.views: dict[str, SliceView] = {}
        self.slot_3d: QWidget | None = None
        if document.base.is_2d:
            self.layout_name = "single"
            self._add("native", grid, 0, 0)
        elif layout == "single":
            self.layout_name = "single"
            self._add(plane, grid, 0, 0)
        else:
            self.layout_name = "mpr"
            self._add("axial", grid, 0, 0)
            self._add("coronal", grid, 0, 1)
            self._add("sagittal", grid, 1, 0)
            placeholder = QLabel("3D view")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            placeholder.setStyleSheet("color: #777; background: #000;")
            self.slot_3d = placeholder
            grid.addWidget(placeholder, 1, 1)
            grid.setRowStretch(0, 1)
            grid.setRowStretch(1, 1)
            grid.setColumnStretch(0, 1)
            grid.setColumnStretch(1, 1)
            if with_3d:
                QTimer.singleShot(CREATE_3D_DELAY_MS, self._create_3d)

    def _add(self, plane: str, grid: QGridLayout, row: int, col: int) -> None:
        view = SliceView(self.document, plane, self)
        view.hovered.connect(self.hovered)
        view.annotation_drawn.connect(self.annotation_drawn)
        view.annotation_edited.connect(self.annotation_edited)
        view.annotation_text_requested.connect(self.annotation_text_requested)
        self.views[plane] = view
        grid.addWidget(view, row, col)

    def ensure_3d(self) -> None:
        """Create the 3D view now rather than after the first paint (screenshots)."""
        self._create_3d()

    def _create_3d(self) -> None:
        if self.slot_3d is None or not isinstance(self.slot_3d, QLabel) or self._detached:
            return
        from viewer.views.view3d import View3D

        self.set_3d_widget(View3D(self.document, self))

    def set_3d_widget(self, widget: QWidget) -> None:
        """Put ``widget`` into the 3D slot of the MPR layout."""
        if self.slot_3d is None:
            return
        grid: QGridLayout = self.layout()
        grid.replaceWidget(self.slot_3d, widget)
        self.slot_3d.deleteLater()
        self.slot_3d = widget

    @property
    def primary(self) -> SliceView:
        """The view that keyboard scrolling and `--slice` address: axial, or the only view."""
        return self.views.get("axial") or next(iter(self.views.values()))

    def set_tool(self, tool: str | None) -> None:
        """Drawing tool for every view: "ruler", "ellipse", "arrow", "text" or None (crosshair)."""
        for v in self.views.values():
            v.tool = tool

    def view_state(self) -> dict:
        """Zoom/pan of each slice view (scene mm ranges) and the 3D camera, for workspaces."""
        state: dict = {"ranges": {p: [list(r) for r in v.viewbox.viewRange()] for p, v in self.views.items()}}
        scene = getattr(self.slot_3d, "scene", None)
        camera = scene.camera_state() if scene is not None else {}
        if camera:  # {} while a threaded 3D view is still building its scene
            state["camera3d"] = camera
        return state

    def apply_view_state(self, state: dict) -> None:
        """Restore a :meth:`view_state` (unknown planes and a missing 3D view are ignored)."""
        for plane, (xr, yr) in state.get("ranges", {}).items():
            if plane in self.views:
                self.views[plane].viewbox.setRange(xRange=xr, yRange=yr, padding=0)
        if "camera3d" in state:
            self.ensure_3d()
            scene = getattr(self.slot_3d, "scene", None)
            if scene is not None:
                scene.set_camera_state(state["camera3d"])

    def reset_zoom(self) -> None:
        for v in self.views.values():
            v.reset_zoom()

    def detach(self) -> None:
        """Stop observing the Document and release the 3D view's render window."""
        self._detached = True
        for v in self.views.values():
            v.detach()
        if self.slot_3d is not None and hasattr(self.slot_3d, "shutdown"):
            self.slot_3d.shutdown()
