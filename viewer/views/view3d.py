"""View3D: the 3D view of a Document (volume rendering, label/heatmap surfaces, crosshair, slice planes).

The scene itself — frames, transfer-function presets, camera presets — lives in
:mod:`viewer.views.vtk_scene` (world frame = patient LPS mm). This module is only the Qt side:

* **Offscreen backend on a render thread** (the default): the scene, its offscreen render window and every
  VTK call live on a :class:`~viewer.views.render_thread.SceneThread`; finished frames are copied into a plain
  QWidget. Volume upload, surface extraction and software-OpenGL frames (up to ~1 s for a large volume) never
  run on the GUI thread. Mouse: left drag rotates (azimuth/elevation), right drag or the wheel zooms, middle
  or Shift+left drag pans, double-click resets the camera.
* **Offscreen backend on the GUI thread** (``threaded=False``): the same, rendered in place (tests that look
  inside the scene, benchmarks).
* **Interactive backend** (``interactive=True``): ``vtkmodules.qt.QVTKRenderWindowInteractor`` with VTK's
  trackball-camera style, rendering on the GUI thread; only with a real window system (it renders
  black/noise on the offscreen platform, so it is never used there).

Importing this module does not import VTK (that costs about 0.2–0.5 s); VTK is imported by the first
``View3D(...)`` or by :func:`preload`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QImage, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer.model.document import Document

CAMERA_WORDS = {"A": "anterior", "P": "posterior", "L": "left", "R": "right", "S": "superior", "I": "inferior"}

if TYPE_CHECKING:
    from viewer.views.render_thread import RemoteScene, SceneThread
    from viewer.views.vtk_scene import Scene3D

log = logging.getLogger(__name__)

PRESETS = ("ct_bone", "ct_soft_tissue", "mr")
CAMERAS = ("A", "P", "L", "R", "S", "I")

ROTATE_DEG_PER_PX = 0.5
ZOOM_PER_WHEEL_STEP = 1.15
SETTLE_MS = 300  # no change for this long (ms) after quick frames → the 3D view redraws in full quality


def preload() -> float:
    """Import the VTK modules the 3D view needs (call after the first paint); returns seconds spent."""
    import time

    t = time.perf_counter()
    from viewer.views import vtk_scene  # noqa: F401

    return time.perf_counter() - t


def offscreen_platform() -> bool:
    """True when Qt draws to no real screen (``QT_QPA_PLATFORM=offscreen``, or no GUI application yet)."""
    return QGuiApplication.platformName() in ("offscreen", "minimal", "")


def same_camera(a: dict, b: dict, tol: float = 1e-6) -> bool:
    """Whether two :meth:`Scene3D.camera_state` dicts describe the same camera (to ``tol`` mm / degrees)."""
    if set(a) != set(b):
        return False
    return all(np.allclose(a[k], b[k], atol=tol) for k in a)


class _FrameCanvas(QWidget):
    """Shows the offscreen backend's frames and turns mouse gestures into camera moves."""

    resized = Signal(int, int)  # device pixels

    def __init__(self, view: View3D) -> None:
        super().__init__(view)
        self._view = view
        self._image: QImage | None = None
        self._frame: np.ndarray | None = None  # keeps the QImage's buffer alive
        self._last: QPointF | None = None
        self._button = Qt.MouseButton.NoButton
        self.setMinimumSize(64, 64)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    def set_frame(self, rgb: np.ndarray) -> None:
        """Show ``rgb`` (H, W, 3) uint8, top row first."""
        self._frame = np.ascontiguousarray(rgb)
        h, w, _ = self._frame.shape
        self._image = QImage(self._frame.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None:
            p.drawImage(QRectF(self.rect()), self._image)
        p.end()

    def resizeEvent(self, event) -> None:  # noqa: N802
        dpr = self.devicePixelRatioF()
        self.resized.emit(round(self.width() * dpr), round(self.height() * dpr))
        super().resizeEvent(event)

    # ---- gestures ----------------------------------------------------------------------------------
    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self._last = ev.position()
        self._button = ev.button()
        if ev.button() == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._button = Qt.MouseButton.MiddleButton
        self._view._set_interacting(True)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._last is None or self._view.scene is None:
            return
        pos = ev.position()
        dpr = self.devicePixelRatioF()
        dx, dy = (pos.x() - self._last.x()), (pos.y() - self._last.y())
        self._last = pos
        scene = self._view.scene
        if self._button == Qt.MouseButton.LeftButton:
            # the scene follows the hand: drag right turns the front to the right, drag down tips it down
            self._view.user_moved_camera()
            scene.rotate(-dx * ROTATE_DEG_PER_PX, dy * ROTATE_DEG_PER_PX)
        elif self._button == Qt.MouseButton.RightButton:
            self._view.user_moved_camera()
            scene.zoom(1.01 ** (-dy))
        elif self._button == Qt.MouseButton.MiddleButton:
            self._view.user_moved_camera()
            scene.pan(dx * dpr, dy * dpr)
        ev.accept()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self._last = None
        self._button = Qt.MouseButton.NoButton
        self._view._set_interacting(False)
        ev.accept()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self._view.reset_camera()
        ev.accept()

    def wheelEvent(self, ev: QWheelEvent) -> None:  # noqa: N802
        steps = ev.angleDelta().y() / 120.0
        if steps and self._view.scene is not None:
            self._view.user_moved_camera()
            self._view.scene.zoom(ZOOM_PER_WHEEL_STEP ** steps)
        ev.accept()


class View3D(QWidget):
    """3D view of ``document``: its base volume rendered, overlays as surfaces, crosshair and planes.

    Args:
        document: the study; the view follows its layers and crosshair and keeps no copy of them.
        parent: Qt parent.
        interactive: ``True`` asks for the embedded QVTK widget (rendering on the GUI thread), which still falls
            back to offscreen on the "offscreen" Qt platform (where QVTK cannot draw); otherwise the offscreen
            backend.
        threaded: the offscreen backend renders on its own thread (the default: the GUI never waits for a
            frame); ``False`` renders on the GUI thread.
        only_layers: ids of the overlays to draw whatever their visibility (a compare pane); None: all visible.

    Signals:
        frame_rendered(): after each frame the offscreen backend has drawn and shown.
        camera_changed(dict): the camera (:meth:`Scene3D.camera_state`) after the user moved it (threaded
            backend); :meth:`follow_camera` makes another view take it (linked compare panes).
    """

    frame_rendered = Signal()
    camera_changed = Signal(object)  # dict (camera_state) after the user moved this view's camera
    _frame_ready = Signal(object)  # from the render thread: an (H, W, 3) uint8 frame
    _scene_changed = Signal()  # from the render thread: the scene changed (quick-frame pacing)

    def __init__(self, document: Document, parent: QWidget | None = None,
                 interactive: bool | None = None, threaded: bool = True,
                 only_layers: set[int] | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._leading = False  # the user moved this camera: report its moves (compare panes follow)
        self._camera_seen: dict = {}
        self.interactive = bool(interactive and not offscreen_platform())
        self.render_thread: SceneThread | None = None
        if interactive and not self.interactive:
            log.info("3D view: Qt platform %r cannot host the QVTK widget; rendering offscreen",
                     QGuiApplication.platformName())
        self._closed = False
        self._pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._render_now)
        # Changes in quick succession (scrolling the slice views, dragging an opacity slider) are drawn in the
        # quick interactive quality; one full-quality frame follows once nothing has changed for SETTLE_MS.
        self._gesture = False
        self._settling = False
        self._last_frame = float("-inf")  # time.monotonic() after the last frame
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        document.crosshair_changed.connect(self._on_crosshair_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.controls = self._build_controls(CAMERAS, PRESETS)
        layout.addWidget(self.controls)
        self._vtk_widget = None
        self._canvas: _FrameCanvas | None = None
        self.scene: Scene3D | RemoteScene | None = None
        if threaded and not self.interactive:
            from viewer.views.render_thread import RemoteScene, SceneThread

            self._canvas = _FrameCanvas(self)
            layout.addWidget(self._canvas)
            self._frame_ready.connect(self._show_frame)
            self._scene_changed.connect(self._on_scene_changed)
            self.render_thread = SceneThread(document, on_frame=self._frame_ready.emit,
                                             on_change=self._scene_changed.emit, only_layers=only_layers)
            self.scene = RemoteScene(self.render_thread)
            self._canvas.resized.connect(self._on_canvas_resized)
        elif self.interactive:
            from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
            from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

            from viewer.views import vtk_scene  # lazy: VTK costs start-up time

            self._vtk_widget = QVTKRenderWindowInteractor(self)
            layout.addWidget(self._vtk_widget)
            window = self._vtk_widget.GetRenderWindow()
            self.scene = vtk_scene.Scene3D(document, render_window=window, on_change=self.schedule_render)
            interactor = window.GetInteractor()
            interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
            interactor.SetDesiredUpdateRate(15.0)
            interactor.SetStillUpdateRate(0.0001)
            self._vtk_widget.Initialize()
        else:
            from viewer.views import vtk_scene

            self._canvas = _FrameCanvas(self)
            layout.addWidget(self._canvas)
            self.scene = vtk_scene.Scene3D(document, on_change=self.schedule_render)
            self._canvas.resized.connect(self._on_canvas_resized)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.preset_box.setCurrentText(self.preset)
        self.schedule_render()

    def _build_controls(self, cameras: tuple[str, ...], presets: tuple[str, ...]) -> QWidget:
        """A thin strip: camera buttons (look from A, P, L, R, S, I), reset, transfer preset, planes."""
        strip = QWidget(self)
        strip.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # never widens the view
        strip.setStyleSheet("QToolButton, QComboBox, QCheckBox { color: #ddd; background: #222; }"
                            "QWidget { background: #111; }")
        row = QHBoxLayout(strip)
        row.setContentsMargins(2, 2, 2, 2)
        row.setSpacing(2)
        self.camera_buttons: dict[str, QToolButton] = {}
        for name in cameras:
            b = QToolButton(strip)
            b.setText(name)
            b.setToolTip(f"Look from the patient's {CAMERA_WORDS.get(name, name)} side")
            b.clicked.connect(lambda _c=False, n=name: self.set_camera(n))
            row.addWidget(b)
            self.camera_buttons[name] = b
        reset = QToolButton(strip)
        reset.setText("⟲")
        reset.setToolTip("Reset the camera")
        reset.clicked.connect(self.reset_camera)
        row.addWidget(reset)
        row.addStretch(1)
        self.preset_box = QComboBox(strip)
        self.preset_box.addItems(list(presets))
        self.preset_box.setToolTip("Volume rendering preset")
        self.preset_box.textActivated.connect(self.set_preset)
        row.addWidget(self.preset_box)
        self.planes_box = QCheckBox("planes", strip)
        self.planes_box.setToolTip("Show the three slice planes through the crosshair")
        self.planes_box.toggled.connect(self.show_planes)
        row.addWidget(self.planes_box)
        return strip

    # ---- public API --------------------------------------------------------------------------------
    @property
    def preset(self) -> str:
        """Name of the base volume's transfer-function preset."""
        return self.scene.preset if self.scene else ""

    def set_preset(self, name: str) -> None:
        """Transfer-function preset of the base volume: "ct_bone", "ct_soft_tissue" or "mr"."""
        if self.scene:
            self.scene.set_preset(name)

    def set_camera(self, name: str) -> None:
        """Camera preset: look from the patient's A(nterior), P, L(eft), R, S(uperior) or I side.

        "A" looks at the face with S up (patient Left on screen right); "S" and "I" keep anterior up.
        """
        if self.scene:
            self.user_moved_camera()
            self.scene.set_camera(name)

    def reset_camera(self) -> None:
        """Anterior view framing the whole base volume."""
        if self.scene:
            self.user_moved_camera()
            self.scene.reset_camera()

    def show_planes(self, show: bool) -> None:
        """Show or hide outlines of the axial, coronal and sagittal slices through the crosshair."""
        if self.scene:
            self.scene.show_planes(show)

    @property
    def frame_widget(self) -> QWidget | None:
        """The child widget that shows the rendered frames (the QVTK widget or the offscreen canvas)."""
        return self._vtk_widget if self._vtk_widget is not None else self._canvas

    def render_to_array(self) -> np.ndarray:
        """Render now, in full quality, and return the frame as ``(H, W, 3)`` uint8 RGB, top row first
        (screenshots, tests)."""
        if self.scene is None or self._closed:
            raise RuntimeError("the 3D view is closed")
        self._timer.stop()
        self._pending = False
        if not self._gesture:
            self._settle.stop()
            self.scene.set_interacting(False)
        frame = self.scene.render_to_array()
        self._last_frame = time.monotonic()
        if self._canvas is not None:
            self._canvas.set_frame(frame)
        self._sync_preset_box()
        return frame

    def _sync_preset_box(self) -> None:
        if self.preset and self.preset_box.currentText() != self.preset:
            self.preset_box.setCurrentText(self.preset)

    @property
    def threaded(self) -> bool:
        """Whether the scene renders on its own thread (the GUI thread only shows finished frames)."""
        return self.render_thread is not None

    def schedule_render(self) -> None:
        """Ask for a new frame at the next turn of the event loop (several requests make one frame).

        A request within SETTLE_MS of the previous frame is drawn in the quick interactive quality, and a
        full-quality frame follows when the requests stop."""
        if self._closed:
            return
        if not self._settling and time.monotonic() - self._last_frame < SETTLE_MS / 1000:
            self._quick_frames()
        if self.render_thread is not None:
            self.render_thread.request_frame()
            return
        self._pending = True
        self._timer.start()

    # ---- internals ---------------------------------------------------------------------------------
    def _render_now(self) -> None:
        if self._closed or not self._pending or self.scene is None:
            return
        self._pending = False
        if self._vtk_widget is not None:
            if self._vtk_widget.isVisible():
                self._vtk_widget.GetRenderWindow().Render()
                self._last_frame = time.monotonic()
            return
        if self._canvas is not None:
            self._canvas.set_frame(self.scene.render_to_array())
            self._last_frame = time.monotonic()
            self.frame_rendered.emit()

    def _show_frame(self, frame: np.ndarray) -> None:
        """A frame from the render thread (GUI thread, queued): show it."""
        if self._closed or self._canvas is None:
            return
        self._canvas.set_frame(frame)
        self._last_frame = time.monotonic()
        self._sync_preset_box()
        camera = self.render_thread.camera
        if self._leading and camera and not same_camera(camera, self._camera_seen):
            self._camera_seen = camera
            self.camera_changed.emit(dict(camera))
        self.frame_rendered.emit()

    def user_moved_camera(self) -> None:
        """The user turned, zoomed or panned this view: its camera leads the views that follow it."""
        self._leading = True

    def follow_camera(self, state: dict) -> None:
        """Take the camera ``state`` of a linked view (no-op when it is already this view's)."""
        if self._closed or self.scene is None or not state or same_camera(state, self._camera_seen):
            return
        self._leading = False
        self._camera_seen = dict(state)
        self.scene.set_camera_state(state)
        self.schedule_render()

    def _on_scene_changed(self) -> None:
        """The threaded scene changed (it renders by itself): pace quick frames as :meth:`schedule_render` does."""
        if not self._closed and not self._settling and time.monotonic() - self._last_frame < SETTLE_MS / 1000:
            self._quick_frames()

    def _on_canvas_resized(self, width: int, height: int) -> None:
        if self.scene is not None and not self._closed:
            self.scene.set_size(width, height)
            self.schedule_render()

    def _on_crosshair_moved(self, _xyz: object) -> None:
        if not self._closed:
            self._quick_frames()

    def _quick_frames(self) -> None:
        """Draw in the quick interactive quality until nothing has changed for SETTLE_MS."""
        if self.scene is not None:
            self.scene.set_interacting(True)
            self._settle.start()

    def _settled(self) -> None:
        if not self._gesture:
            self._set_interacting(False)

    def _set_interacting(self, on: bool) -> None:
        self._gesture = on
        if self.scene is not None and not self._closed:
            self.scene.set_interacting(on)
            if not on:  # one full-quality frame after the gesture or the quick succession
                self._settling = True
                try:
                    self.schedule_render()
                finally:
                    self._settling = False

    def shutdown(self) -> None:
        """Stop following the Document and release VTK's window and OpenGL context (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._settle.stop()
        with contextlib.suppress(ValueError, RuntimeError):
            self.document.crosshair_changed.disconnect(self._on_crosshair_moved)
        app = QApplication.instance()
        if app is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                app.aboutToQuit.disconnect(self.shutdown)
        if self.render_thread is not None:
            self.render_thread.close()
        elif self.scene is not None:
            self.scene.close(finalize=self._vtk_widget is None)
            if self._vtk_widget is not None:
                self._vtk_widget.Finalize()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)
