"""The 3D scene on a thread of its own, so that uploading a volume and rendering never stall the GUI.

:class:`SceneThread` creates the :class:`~viewer.views.vtk_scene.Scene3D` — and with it every VTK object: the
offscreen render window and its OpenGL context, the volume's image data, the surfaces — on one worker thread
and touches them only there. Everything else reaches the scene as a task on that thread's queue:

* the Document's events (a new layer, a moved crosshair…) through the scene's ``dispatch``;
* the view's requests (rotate, zoom, preset, resize…) through :meth:`SceneThread.post`;
* what needs an answer (a full-quality frame for a screenshot) through :meth:`SceneThread.call`, which waits.

After the queued tasks have run, one frame is rendered if any of them changed the scene (many changes, one
frame) and handed to ``on_frame(rgb)`` — called on the worker thread; a Qt owner relays it to the GUI thread
with a queued signal. The GUI thread meanwhile only queues tasks and paints finished frames: a software-OpenGL
frame of a large volume takes up to a second, the GUI none of it. Qt-free (``threading`` only); importing this
module does not import VTK.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from viewer.model.document import Document

log = logging.getLogger(__name__)

_STOP = object()
_WAKE = object()


class SceneThread:
    """A 3D scene of ``document`` owned by a worker thread; frames go to ``on_frame`` (called on that thread).

    Args:
        document: the study; the scene follows its layers and crosshair (events handled on the worker).
        on_frame: ``on_frame(rgb)`` with ``rgb`` ``(H, W, 3)`` uint8, top row first, after each frame.
        on_change: called (on the worker) whenever the scene changed and will draw a new frame.
        size: first render-window size (w, h) in device pixels.
        max_dim: per-axis voxel limit of the rendered volumes (see :class:`~viewer.views.vtk_scene.Scene3D`).
        only_layers: the overlays a compare pane draws (see :class:`~viewer.views.vtk_scene.Scene3D`).

    Attributes:
        camera: the camera (:meth:`Scene3D.camera_state`) as of the last task or frame — read without waiting.
        preset: the base volume's transfer-function preset as of the last task.
        frame_seconds: how long the last frame took to render and read back (s).
    """

    def __init__(self, document: Document, on_frame: Callable[[np.ndarray], None],
                 on_change: Callable[[], None] | None = None, size: tuple[int, int] = (400, 400),
                 max_dim: int = 256, only_layers: set[int] | None = None) -> None:
        self.document = document
        self._on_frame = on_frame
        self._on_change = on_change
        self._size = size
        self._max_dim = max_dim
        self._only_layers = only_layers
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._frame_wanted = False
        self._closed = False
        self.scene = None  # the Scene3D, created on the worker; touch it only through post/call
        self.camera: dict[str, list[float]] = {}
        self.preset = ""
        self.camera_name = "A"
        self.frame_seconds = 0.0
        self.ready = threading.Event()  # set once the scene exists (or failed to)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lucent-3d-render", daemon=True)
        self._thread.start()

    # ---- the GUI's side --------------------------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the worker after the tasks queued before it."""
        if not self._closed:
            self._tasks.put((fn, args, None))

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
        """Run ``fn(*args)`` on the worker after the queued tasks and return its result (waits up to ``timeout``
        seconds; raises what ``fn`` raised, or RuntimeError when the thread is closed)."""
        if self._closed:
            raise RuntimeError("the 3D render thread is closed")
        if threading.current_thread() is self._thread:
            return fn(*args)
        future: Future = Future()
        self._tasks.put((fn, args, future))
        return future.result(timeout=timeout)

    def request_frame(self) -> None:
        """Render a frame after the tasks queued so far (requests in between make one frame)."""
        self._frame_wanted = True
        if not self._closed:
            self._tasks.put(_WAKE)

    def close(self, timeout: float = 10.0) -> None:
        """Release the scene and its OpenGL context on the worker, then end the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._tasks.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("3D render thread did not stop within %.0f s", timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- the worker ---------------------------------------------------------------------------------
    def _want_frame(self) -> None:
        self._frame_wanted = True
        if self._on_change is not None:
            with contextlib.suppress(RuntimeError):  # the owner is gone
                self._on_change()

    def _run(self) -> None:
        try:
            from viewer.views import vtk_scene
            from viewer.views.vtk_setup import offscreen_window

            window = offscreen_window(*self._size)
            self.scene = vtk_scene.Scene3D(self.document, render_window=window, on_change=self._want_frame,
                                           max_dim=self._max_dim, dispatch=self.post,
                                           only_layers=self._only_layers)
            self._note_state()
            self._frame_wanted = True
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, never kills the app
            self.error = exc
            log.exception("3D view: the scene could not be built")
            self._closed = True
            return
        finally:
            self.ready.set()
        while True:
            task = self._tasks.get()
            stop = task is _STOP or self._run_task(task)
            while not stop:  # everything queued so far, then one frame
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                stop = task is _STOP or self._run_task(task)
            if stop:
                break
            if self._frame_wanted:
                self._frame_wanted = False
                self._render()
        self.scene.close()
        self.scene = None

    def _run_task(self, task: Any) -> bool:
        if task is _WAKE:
            return False
        fn, args, future = task
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - a failed task must not end the thread
            if future is not None:
                future.set_exception(exc)
            else:
                log.exception("3D view: %s failed", getattr(fn, "__name__", fn))
            return False
        if future is not None:
            future.set_result(result)
        self._note_state()
        return False

    def _note_state(self) -> None:
        """What the GUI may ask without waiting: preset, camera preset name and camera, as of the last task."""
        self.preset = self.scene.preset
        self.camera_name = getattr(self.scene, "camera_name", self.camera_name)
        self.camera = self.scene.camera_state()

    def _render(self) -> None:
        t = time.perf_counter()
        frame = self.scene.render_to_array()
        self.frame_seconds = time.perf_counter() - t
        self.camera = self.scene.camera_state()
        with contextlib.suppress(RuntimeError):  # the owner's widget is gone
            self._on_frame(frame)

    def full_frame(self) -> np.ndarray:
        """Render now, in full quality, and return the frame (waits; for screenshots and tests)."""

        def render() -> np.ndarray:
            self.scene.set_interacting(False)
            self._frame_wanted = False
            frame = self.scene.render_to_array()
            self.camera = self.scene.camera_state()
            return frame

        return self.call(render)


class RemoteScene:
    """The GUI's handle on a :class:`SceneThread`'s scene: :data:`COMMANDS` (same names and arguments as
    :class:`~viewer.views.vtk_scene.Scene3D`'s) are queued to the render thread; questions are answered from
    what the thread last reported, without waiting."""

    COMMANDS = ("rotate", "zoom", "pan", "set_camera", "reset_camera", "set_preset", "show_planes",
                "set_interacting", "set_size", "set_camera_state")

    def __init__(self, thread: SceneThread) -> None:
        self.thread = thread

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in RemoteScene.COMMANDS:
            raise AttributeError(name)
        thread = self.thread

        def command(*args: Any) -> None:
            thread.post(lambda: getattr(thread.scene, name)(*args))

        return command

    @property
    def preset(self) -> str:
        return self.thread.preset

    @property
    def camera_name(self) -> str:
        return self.thread.camera_name

    def camera_state(self) -> dict[str, list[float]]:
        """The camera as of the last task the render thread ran (patient LPS mm), for workspaces; {} until the
        scene exists. Never waits (autosaves ask for it after every change)."""
        return dict(self.thread.camera)

    def render_to_array(self) -> np.ndarray:
        """A full-quality frame, rendered now (waits for the render thread)."""
        return self.thread.full_frame()
