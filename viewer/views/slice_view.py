"""SliceView: one plane (axial, coronal, sagittal or native 2D) of a Document, drawn with pyqtgraph.

Scene coordinates are millimetres on the displayed grid (see :class:`~viewer.views.layer_items.LayerImage`),
so anisotropic voxels keep their true aspect ratio with ``lockAspect``. The slice shown is derived from the
Document's crosshair — the view keeps no slice index of its own.

Mouse: left click/drag moves the crosshair; right drag changes window (x) and level (y); middle drag or
shift+left drag pans; wheel scrolls slices; ctrl+wheel zooms. Keys: Up/Down and PageUp/PageDown scroll,
Home/End jump to the first/last slice, R resets the zoom.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QVBoxLayout, QWidget

from viewer.model.annotations import Annotation, on_slice
from viewer.model.document import Document
from viewer.model.geometry import SliceMapping
from viewer.model.layers import ImageLayer
from viewer.model.window_level import WindowLevel
from viewer.views.annotation_items import AnnotationItems
from viewer.views.annotations_overlay import ViewAnnotations
from viewer.views.layer_items import LayerImage, layer_image

PLANE_TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal", "native": ""}


class _SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse gestures follow clinical viewers rather than pyqtgraph's defaults."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view
        self._wl_start: tuple[WindowLevel, QPointF] | None = None
        self._grab: tuple[Annotation, int] | None = None  # annotation point being dragged

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt API)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self._view.scroll(1 if delta > 0 else -1)
        ev.accept()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            hit = self._view.annotation_point_near(self.mapToView(ev.pos())) if ev.double() else None
            if hit is not None and hit[0].kind in ("text", "arrow"):
                self._view.annotation_text_requested.emit(hit[0])
            elif self._view.tool == "text":
                self._view.draw_annotation("text", [self.mapToView(ev.pos())])
            else:
                self._view.set_crosshair_at_scene(self.mapToView(ev.pos()))
            ev.accept()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        button = ev.button()
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and shift):
            ev.accept()
            delta = self.mapToView(ev.pos()) - self.mapToView(ev.lastPos())
            self.translateBy(x=-delta.x(), y=-delta.y())
        elif button == Qt.MouseButton.LeftButton and self._view.tool in ("ruler", "ellipse", "arrow"):
            ev.accept()
            p0, p1 = self.mapToView(ev.buttonDownPos()), self.mapToView(ev.pos())
            if ev.isFinish():
                self._view.clear_preview()
                self._view.draw_annotation(self._view.tool, [p0, p1])
            else:
                self._view.preview_annotation(self._view.tool, [p0, p1])
        elif button == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():
                self._grab = self._view.annotation_point_near(self.mapToView(ev.buttonDownPos()))
            if self._grab is None:
                self._view.set_crosshair_at_scene(self.mapToView(ev.pos()))
                return
            annotation, n = self._grab
            moved = self._view.moved_annotation(annotation, n, self.mapToView(ev.pos()))
            if ev.isFinish():
                self._grab = None
                self._view.clear_preview()
                self._view.annotation_edited.emit(annotation, moved)
            else:
                self._view.preview(moved)
        elif button == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                layer = self._view.document.base_layer
                self._wl_start = (layer.window, ev.buttonDownPos()) if layer.window else None
            if self._wl_start is not None:
                start, p0 = self._wl_start
                d = ev.pos() - p0
                self._view.adjust_window(start, d.x(), d.y())
            if ev.isFinish():
                self._wl_start = None
        else:
            ev.ignore()


class SliceView(QWidget):
    """A 2D view of one plane of ``document``.

    Signals:
        hovered(str): read-out text (voxel index, patient mm, value) under the mouse.
        annotation_drawn(Annotation): the user finished drawing with a tool (``tool`` = "ruler",
            "ellipse", "arrow" or "text"; None = crosshair).
        annotation_edited(Annotation, Annotation): the user dragged a point of an annotation (with the
            crosshair tool, starting within a few pixels of the point); the app replaces it (undoable).
    """

    hovered = Signal(str)
    annotation_drawn = Signal(object)  # Annotation, not yet in the Document: the app adds it (undoable)
    annotation_edited = Signal(object, object)  # (annotation in the Document, its edited copy)
    annotation_text_requested = Signal(object)  # double-click on a text/arrow annotation: edit its label

    def __init__(self, document: Document, plane: str, parent: QWidget | None = None,
                 only_layers: set[int] | None = None) -> None:
        """``only_layers``: ids (``id(layer)``) of the overlays this view shows; None = all visible layers. A compare
        pane gets its own set and draws those overlays even when the layer list hides them (the base image is
        always shown)."""
        super().__init__(parent)
        self.document = document
        self.plane = plane
        self.only_layers = only_layers
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)
        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground("k")
        self.viewbox = _SliceViewBox(self)
        self.graphics.setCentralItem(self.viewbox)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics)
        self.annotations = ViewAnnotations(self.graphics)
        pen = QPen(QColor(60, 200, 255, 170))
        pen.setCosmetic(True)
        pen.setWidthF(1.0)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        for line in (self.h_line, self.v_line):
            line.setZValue(1000)
            self.viewbox.addItem(line, ignoreBounds=True)
        self.layer_images: list[LayerImage] = []
        self.tool: str | None = None
        self.annotation_items = AnnotationItems(self)
        self._preview: list = []
        self._texts_key: tuple | None = None  # what the corner texts and colour bars last showed
        self._hover_scene: QPointF | None = None
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.viewbox.sigRangeChanged.connect(self._update_scale)
        document.crosshair_changed.connect(self._on_crosshair)
        self._connect_layer_list(True)
        document.layers.events.child_event.connect(self._on_layer_property)
        document.annotations.events.connect(self._on_annotations)
        self._rebuild_layers()
        self.reset_zoom()

    # ---- structure ------------------------------------------------------------------------------------
    @property
    def mapping(self) -> SliceMapping:
        return self._mapping

    def _rebuild_layers(self) -> None:
        for li in self.layer_images:
            li.disconnect()
            self.viewbox.removeItem(li.item)
        base = self.document.base
        self._mapping = SliceMapping.for_volume(base, self.plane)
        self.layer_images = [layer_image(layer, base, self._mapping, z, shown=self.shows(layer),
                                         pinned=self.pins(layer))
                             for z, layer in enumerate(self.document.layers)]
        for li in self.layer_images:
            self.viewbox.addItem(li.item)
        self.annotations.letters = ({} if self.plane == "native"
                                    else self._mapping.edge_letters(base.affine))
        self.annotations.units = "mm" if base.spacing_known else "px"
        self._texts_key = None  # letters and units may have changed: repaint the overlay
        self._refresh()

    def shows(self, layer) -> bool:
        """Whether this view may draw ``layer`` (when it is visible, or pinned)."""
        return self.only_layers is None or layer is self.document.base_layer or id(layer) in self.only_layers

    def pins(self, layer) -> bool:
        """Whether this view draws ``layer`` whatever its visibility (the overlays a compare pane was given)."""
        return self.only_layers is not None and id(layer) in self.only_layers

    def drawn_layers(self) -> list:
        """The layers this view draws now, bottom first (for legends)."""
        return [li.layer for li in self.layer_images if li.drawn]

    _LIST_SIGNALS = ("inserted", "removed", "moved", "changed", "reordered")

    def _connect_layer_list(self, connect: bool) -> None:
        for name in self._LIST_SIGNALS:
            sig = getattr(self.document.layers.events, name)
            if connect:
                sig.connect(self._on_layers_changed)
            else:
                sig.disconnect(self._on_layers_changed)

    def _on_layers_changed(self, *_args) -> None:
        self._rebuild_layers()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.detach()
        super().closeEvent(event)

    def detach(self) -> None:
        """Stop observing the Document (call before dropping the view)."""
        try:
            self.document.crosshair_changed.disconnect(self._on_crosshair)
            self._connect_layer_list(False)
            self.document.layers.events.child_event.disconnect(self._on_layer_property)
            self.document.annotations.events.disconnect(self._on_annotations)
        except (ValueError, RuntimeError):
            pass
        for li in self.layer_images:
            li.disconnect()

    # ---- state derived from the document ---------------------------------------------------------
    def crosshair_screen(self) -> tuple[float, float, float]:
        """(slice, col, row) of the crosshair in this view, continuous."""
        ijk = self.document.base.patient_to_index(self.document.crosshair)
        return self._mapping.index_to_screen(ijk)

    @property
    def slice_index(self) -> int:
        s = self.crosshair_screen()[0]
        return int(np.clip(np.rint(s), 0, self._mapping.n_slices - 1))

    def scene_of_screen(self, col: float, row: float) -> QPointF:
        """Scene point (mm) of the centre of screen pixel (col, row)."""
        pw, ph = self._mapping.pixel_size
        return QPointF((col + 0.5) * pw, (row + 0.5) * ph)

    def screen_of_scene(self, pt: QPointF) -> tuple[float, float]:
        pw, ph = self._mapping.pixel_size
        return pt.x() / pw - 0.5, pt.y() / ph - 0.5

    # ---- drawing -----------------------------------------------------------------------------------
    def _refresh(self) -> None:
        s = self.slice_index
        for li in self.layer_images:
            li.show_slice(s)
        _, col, row = self.crosshair_screen()
        p = self.scene_of_screen(col, row)
        self.v_line.setPos(p.x())
        self.h_line.setPos(p.y())
        self.annotation_items.refresh()
        self._update_texts()

    def _on_annotations(self, *_args) -> None:
        self.annotation_items.refresh()

    # ---- annotation drawing -------------------------------------------------------------------------
    def _patient_of_scene(self, pt: QPointF) -> np.ndarray:
        col, row = self.screen_of_scene(pt)
        return self.document.base.index_to_patient(self._mapping.screen_to_index(self.slice_index, col, row))

    def _annotation(self, kind: str, scene_points: list[QPointF]) -> Annotation:
        return Annotation(kind=kind, plane=self.plane,
                          points=np.array([self._patient_of_scene(p) for p in scene_points]))

    def preview_annotation(self, kind: str, scene_points: list[QPointF]) -> None:
        """Show the annotation being drawn (not in the Document yet)."""
        self.preview(self._annotation(kind, scene_points))

    def preview(self, annotation: Annotation) -> None:
        """Draw ``annotation`` as a preview on top (replacing the previous preview)."""
        self.clear_preview()
        self._preview = self.annotation_items.make(annotation)
        for it in self._preview:
            it.setZValue(950)
            self.viewbox.addItem(it, ignoreBounds=True)

    def clear_preview(self) -> None:
        for it in self._preview:
            self.viewbox.removeItem(it)
        self._preview = []

    def annotation_point_near(self, pt: QPointF, pixels: float = 6.0) -> tuple[Annotation, int] | None:
        """The annotation on this slice with a point within ``pixels`` screen pixels of scene point ``pt``."""
        tolerance = pixels * max(self.viewbox.viewPixelSize())
        best = None
        for a in self.document.annotations:
            if not on_slice(a, self.document.base, self._mapping, self.slice_index):
                continue
            for n, p in enumerate(a.points):
                q = self.annotation_items.scene_point(p)
                d = float(np.hypot(q.x() - pt.x(), q.y() - pt.y()))
                if d <= tolerance and (best is None or d < best[0]):
                    best = (d, a, n)
        return None if best is None else (best[1], best[2])

    def moved_annotation(self, annotation: Annotation, n: int, pt: QPointF) -> Annotation:
        """A copy of ``annotation`` with point ``n`` moved to scene point ``pt`` (on this slice)."""
        points = annotation.points.copy()
        points[n] = self._patient_of_scene(pt)
        return Annotation(annotation.kind, annotation.plane, points, annotation.text)

    def draw_annotation(self, kind: str, scene_points: list[QPointF]) -> None:
        """Emit ``annotation_drawn`` for a finished drawing; zero-length shapes are dropped."""
        a = self._annotation(kind, scene_points)
        if kind != "text" and np.linalg.norm(a.points[1] - a.points[0]) < 1e-6:
            return
        self.annotation_drawn.emit(a)

    def _on_layer_property(self, _info=None) -> None:
        self._update_texts()

    def _on_crosshair(self, _xyz=None) -> None:
        self._refresh()

    def _update_texts(self, *_args) -> None:
        """Corner texts and colour bars; the overlay is repainted only when they changed (a transparent overlay's
        repaint redraws the whole view under it, and the crosshair moves far more often than the texts change)."""
        title = PLANE_TITLES.get(self.plane, self.plane)
        n = self._mapping.n_slices
        top_left = f"{title}  {self.slice_index + 1}/{n}" if n > 1 else title
        if self.only_layers is not None:
            top_left += "\n" + ", ".join(la.name for la in self.document.layers if id(la) in self.only_layers)
        win = self.document.base_layer.window
        bars = [bar for li in self.layer_images if li.drawn and (bar := li.colorbar()) is not None]
        key = (top_left, str(win) if win else "", [(id(b.lut), b.low, b.high, b.title, b.units) for b in bars])
        if key == self._texts_key:
            return
        self._texts_key = key
        a = self.annotations
        a.top_left, a.bottom_left, a.colorbars = top_left, key[1], bars
        a.update()

    def _update_scale(self, *_args) -> None:
        px = self.viewbox.viewPixelSize()[0]
        self.annotations.mm_per_pixel = float(px) if np.isfinite(px) else 0.0
        self.annotations.update()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.annotations.setGeometry(self.graphics.rect())
        self._update_scale()

    def reset_zoom(self) -> None:
        rows, cols = self._mapping.screen_shape
        pw, ph = self._mapping.pixel_size
        self.viewbox.setRange(xRange=(0, cols * pw), yRange=(0, rows * ph), padding=0.02)

    # ---- user actions (all of them change the Document) ---------------------------------------
    def scroll(self, steps: int) -> None:
        """Move the crosshair ``steps`` slices along this view's normal (clamped to the volume)."""
        s, col, row = self.crosshair_screen()
        target = int(np.clip(np.rint(s) + steps, 0, self._mapping.n_slices - 1))
        self._set_crosshair_screen(target, col, row)

    def go_to_slice(self, index: int) -> None:
        _, col, row = self.crosshair_screen()
        self._set_crosshair_screen(int(np.clip(index, 0, self._mapping.n_slices - 1)), col, row)

    def _set_crosshair_screen(self, s: float, col: float, row: float) -> None:
        ijk = self._mapping.screen_to_index(s, col, row)
        self.document.crosshair = self.document.base.index_to_patient(ijk)

    def set_crosshair_at_scene(self, pt: QPointF) -> None:
        """Put the crosshair under scene point ``pt`` on the current slice (clamped into the image)."""
        col, row = self.screen_of_scene(pt)
        rows, cols = self._mapping.screen_shape
        col, row = float(np.clip(col, 0, cols - 1)), float(np.clip(row, 0, rows - 1))
        self._set_crosshair_screen(self.slice_index, col, row)

    def adjust_window(self, start: WindowLevel, dx: float, dy: float) -> None:
        """Right-drag W/L: right widens the window, down raises the level; scaled by the start width."""
        scale = max(start.width, 1e-3) / 200.0
        layer: ImageLayer = self.document.base_layer
        layer.window = WindowLevel(max(start.width + dx * scale, 1e-3), start.center + dy * scale)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key = ev.key()
        steps = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10, Qt.Key.Key_PageDown: -10}
        if key in steps:
            self.scroll(steps[key])
        elif key == Qt.Key.Key_Home:
            self.go_to_slice(0)
        elif key == Qt.Key.Key_End:
            self.go_to_slice(self._mapping.n_slices - 1)
        elif key == Qt.Key.Key_R:
            self.reset_zoom()
        else:
            super().keyPressEvent(ev)

    # ---- read-out ------------------------------------------------------------------------------
    def _on_mouse_moved(self, pos) -> None:
        pt = self.viewbox.mapSceneToView(pos)
        text = self.readout_at_scene(pt)
        self.annotations.bottom_right = text
        self.annotations.update()
        self.hovered.emit(text)

    def readout_at_scene(self, pt: QPointF) -> str:
        """"i j k | x y z mm | value" under scene point ``pt``, or "" outside the image."""
        col, row = self.screen_of_scene(pt)
        ijk = self._mapping.screen_to_index(self.slice_index, col, row)
        base = self.document.base
        if not base.contains_index(ijk):
            return ""
        r = np.rint(ijk).astype(int)
        value = base.value_at_index(r)
        if isinstance(value, float):
            value_text = f"{value:.4g}"
        elif isinstance(value, list):
            value_text = "(" + ", ".join(str(v) for v in value) + ")"
        else:
            value_text = str(value)
        xyz = base.index_to_patient(r)
        where = (f"{xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f} mm" if base.spacing_known else "")
        idx = f"[{r[0]}, {r[1]}, {r[2]}]" if not base.is_2d else f"[{r[0]}, {r[1]}]"
        return "  ".join(t for t in (idx, where, value_text) if t)
