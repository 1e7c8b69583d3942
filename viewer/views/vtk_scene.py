"""The 3D scene of a Document, built with VTK and free of Qt (the Qt widget is :mod:`viewer.views.view3d`).

The VTK world frame is patient LPS in mm; each volume is drawn on its own grid, placed by a user matrix
(:mod:`viewer.views.vtk_grid`).

Rendering
---------
The base image layer is volume rendered with ``vtkSmartVolumeMapper`` through a preset transfer function
(:mod:`viewer.views.transfer_functions`). On a software OpenGL (Mesa llvmpipe, as on machines without a GPU)
its GPU ray caster is 5–30× slower than VTK's multi-threaded CPU ray caster, so the render mode is chosen from
the OpenGL renderer string at the first frame (override with the environment variable
``LUCENT_VTK_VOLUME_MODE=gpu|cpu``). Label and heatmap layers are drawn as surfaces
(:mod:`viewer.views.layer_surfaces`). The crosshair is a sphere; the three slice planes of the base grid (those
the MPR views show) can be drawn as outlines. The camera is :class:`~viewer.views.scene_camera.SceneCamera`.

Importing this module imports VTK (about 0.2–0.5 s cold): import it lazily.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkVolume,
    vtkVolumeProperty,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from viewer.model.document import Document
from viewer.model.geometry import SliceMapping
from viewer.model.layers import ImageLayer, Layer
from viewer.views.layer_surfaces import LayerProps, surfaces_for
from viewer.views.scene_camera import SceneCamera
from viewer.views.transfer_functions import (
    PRESETS,
    TransferFunction,
    default_preset,
    preset_transfer_function,
)
from viewer.views.vtk_grid import GridImage, grid_image, patient_bounds
from viewer.views.vtk_setup import offscreen_window

PLANE_COLOURS: dict[str, tuple[float, float, float]] = {  # as 3D Slicer: axial red, coronal green, sagittal yellow
    "axial": (0.95, 0.35, 0.35),
    "coronal": (0.45, 0.85, 0.40),
    "sagittal": (0.95, 0.85, 0.30),
}
CPU_SHADING_GAIN = 1.8  # ambient/diffuse factor that matches the CPU ray caster's brightness to the GPU's
CROSSHAIR_COLOUR = (60 / 255, 200 / 255, 1.0)  # the slice views' crosshair pen colour


# ---- the scene -------------------------------------------------------------------------------------
class Scene3D(SceneCamera):
    """Everything the 3D view draws for ``document``, in patient LPS mm, observed from the Document.

    Args:
        document: the study; its layers, base image and crosshair are followed through their events.
        render_window: a window to draw into (the QVTK widget's); ``None`` creates an offscreen one.
        on_change: called (with no argument) when the scene needs a new frame; the owner decides when to
            render. ``None`` renders immediately.
        max_dim: per-axis voxel limit for rendering (larger volumes are strided).
        dispatch: ``dispatch(handler, *args)`` runs a Document listener where the scene lives — the render
            thread of :class:`~viewer.views.render_thread.SceneThread`, which owns every VTK object. ``None``
            runs listeners in the thread that changed the Document.
        only_layers: ids (``id(layer)``) of the overlays to draw, whatever their visibility (a compare pane);
            None draws every visible overlay.
    """

    def __init__(self, document: Document, render_window: vtkRenderWindow | None = None,
                 on_change: Callable[[], None] | None = None, max_dim: int = 256,
                 dispatch: Callable[..., None] | None = None, only_layers: set[int] | None = None) -> None:
        self.document = document
        self.only_layers = only_layers
        self.max_dim = max_dim
        self._on_change = on_change
        self._dispatch = dispatch
        self._listeners: dict[tuple[int, Callable], tuple[object, Callable]] = {}
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.renderer.SetMaximumNumberOfPeels(4)  # depth peeling is on only while a surface is translucent
        if render_window is None:
            render_window = offscreen_window(400, 400)
        self.window = render_window
        self.window.SetAlphaBitPlanes(1)
        self.window.SetMultiSamples(0)
        self.window.AddRenderer(self.renderer)
        self._grab = vtkWindowToImageFilter()
        self._grab.SetInput(self.window)
        self._grab.SetInputBufferTypeToRGB()
        self._grab.ReadFrontBufferOff()
        self._grab.ShouldRerenderOff()  # grab() reads the frame render() drew; no second render
        self._gl_checked = False
        self.gl_renderer = ""  # OpenGL renderer string, known after the first frame
        # the QVTK widget renders by itself: learn the OpenGL renderer at its first frame; frames drawn through
        # render() check it before, so that no Python callback runs inside Render() (on a render thread it would
        # have to take the GIL back from the GUI thread in the middle of a frame)
        self._gl_observer = self.renderer.AddObserver("StartEvent", self._on_first_render)
        self.first_frame_s: float | None = None
        self._created = time.perf_counter()

        self.volume_prop: vtkVolume | None = None
        self._volume_mapper: vtkSmartVolumeMapper | None = None
        self._base_layer: ImageLayer | None = None
        self._base_grid: GridImage | None = None
        self.preset = default_preset(document.base)
        self._overlays: dict[int, LayerProps] = {}
        self._planes_visible = False
        self._closed = False
        self._content_bounds: tuple[float, float, float, float, float, float] | None = None
        self._tf_cache: tuple[tuple[str, int], TransferFunction] | None = None
        self._shading_gain = 1.0
        self._interacting = False

        self._build_base()
        self._build_crosshair()
        self._build_planes()
        self.sync_layers()
        ev = document.layers.events
        for signal in (ev.inserted, ev.removed, ev.moved, ev.changed):
            self.listen(signal, self._on_layers_changed)
        self.listen(document.crosshair_changed, self._on_crosshair)
        self.set_camera("A")

    # ---- listening to the Document ----------------------------------------------------------------
    def listen(self, signal, handler: Callable) -> None:
        """Connect ``handler`` to a Document/layer ``signal`` (psygnal), through ``dispatch`` when there is one."""
        if self._dispatch is None:
            wrapper = handler
        else:
            dispatch = self._dispatch

            def wrapper(*args: object) -> None:
                dispatch(handler, *args)
        self._listeners[(id(signal), handler)] = (signal, wrapper)
        signal.connect(wrapper)

    def unlisten(self, signal, handler: Callable) -> None:
        """Undo :meth:`listen` (nothing when not connected)."""
        entry = self._listeners.pop((id(signal), handler), None)
        if entry is not None:
            entry[0].disconnect(entry[1])

    # ---- change notification --------------------------------------------------------------------
    def changed(self) -> None:
        """Ask the owner for a new frame (or render now when there is no owner)."""
        if self._closed:
            return
        if self._on_change is None:
            self.render()
        else:
            self._on_change()

    def _on_first_render(self, *_: object) -> None:
        if self._gl_checked:
            return
        self._gl_checked = True
        self.renderer.RemoveObserver(self._gl_observer)
        caps = self.window.ReportCapabilities() or ""
        for line in caps.splitlines():
            if "renderer string" in line:
                self.gl_renderer = line.split(":", 1)[1].strip()
        self._choose_volume_mode()

    def _choose_volume_mode(self) -> None:
        m = self._volume_mapper
        if m is None:
            return
        forced = os.environ.get("LUCENT_VTK_VOLUME_MODE", "").lower()
        software = any(s in self.gl_renderer.lower() for s in ("llvmpipe", "softpipe", "swrast", "software"))
        cpu = forced == "cpu" or (forced != "gpu" and software)
        if cpu:
            m.SetRequestedRenderModeToRayCast()
        else:
            m.SetRequestedRenderModeToDefault()
        # VTK's CPU ray caster lights about half as brightly as the GPU one with the same coefficients
        gain = CPU_SHADING_GAIN if cpu else 1.0
        if gain != self._shading_gain:
            self._shading_gain = gain
            self._apply_preset()

    @property
    def volume_mode(self) -> str:
        """"cpu" or "gpu": how the base volume was drawn at the last frame ("" before the first)."""
        if self._volume_mapper is None or not self._gl_checked:
            return ""
        return {1: "cpu", 2: "gpu"}.get(self._volume_mapper.GetLastUsedRenderMode(), "")

    # ---- base volume -------------------------------------------------------------------------------
    def _build_base(self) -> None:
        try:
            layer = self.document.base_layer
        except LookupError:
            return
        self._base_layer = layer
        vol = layer.volume
        if vol.rgb or vol.is_2d:
            return
        self._base_grid = grid_image(vol, self.max_dim)
        mapper = vtkSmartVolumeMapper()
        mapper.SetInputData(self._base_grid.image)
        mapper.SetBlendModeToComposite()
        mapper.SetInteractiveUpdateRate(2.0)
        self._volume_mapper = mapper
        prop = vtkVolume()
        prop.SetMapper(mapper)
        prop.SetUserMatrix(self._base_grid.matrix)
        self.volume_prop = prop
        self._apply_preset()
        self.renderer.AddVolume(prop)
        prop.SetVisibility(bool(layer.visible))
        self.listen(layer.events, self._on_base_event)
        if self._gl_checked:
            self._choose_volume_mode()

    def _on_base_event(self, info) -> None:
        if self.volume_prop is None or self._base_layer is None:
            return
        name = info.signal.name
        if name == "visible":
            self.volume_prop.SetVisibility(bool(self._base_layer.visible))
        elif name == "opacity":
            self._apply_preset()
        else:
            return
        self.changed()

    def transfer_function(self) -> TransferFunction:
        """The current preset's transfer function for the base volume (cached per preset and volume)."""
        vol = self.document.base
        key = (self.preset, id(vol))
        if self._tf_cache is None or self._tf_cache[0] != key:
            self._tf_cache = (key, preset_transfer_function(self.preset, vol))
        return self._tf_cache[1]

    def _apply_preset(self) -> None:
        if self.volume_prop is None or self._base_layer is None:
            return
        tf = self.transfer_function()
        scale = float(np.clip(self._base_layer.opacity, 0.0, 1.0))
        ctf = vtkColorTransferFunction()
        for v, r, g, b in tf.colour:
            ctf.AddRGBPoint(v, r, g, b)
        otf = vtkPiecewiseFunction()
        for v, o in tf.opacity:
            otf.AddPoint(v, o * scale)
        prop = vtkVolumeProperty()
        prop.SetColor(ctf)
        prop.SetScalarOpacity(otf)
        prop.SetScalarOpacityUnitDistance(1.0)
        prop.SetInterpolationTypeToLinear()
        prop.SetShade(bool(tf.shade and not (self._interacting and self._shading_gain != 1.0)))
        prop.SetAmbient(tf.ambient * self._shading_gain)
        prop.SetDiffuse(tf.diffuse * self._shading_gain)
        prop.SetSpecular(tf.specular)
        self.volume_prop.SetProperty(prop)

    def set_preset(self, name: str) -> None:
        """Switch the base volume's transfer function to preset ``name`` (one of :data:`PRESETS`)."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {PRESETS}")
        self.preset = name
        self._content_bounds = None
        self._apply_preset()
        self.changed()

    # ---- overlays ----------------------------------------------------------------------------------
    def _on_layers_changed(self, *_: object) -> None:
        self.sync_layers()
        self.changed()

    def sync_layers(self) -> None:
        """Create props for new label/heatmap layers and drop those of layers no longer in the Document."""
        try:
            base = self.document.base_layer
        except LookupError:
            base = None
        if base is not self._base_layer:
            self._content_bounds = None
            self._drop_base()
            self._build_base()
        present = {id(la): la for la in list(self.document.layers) if surfaces_for(la) is not None
                   and (self.only_layers is None or id(la) in self.only_layers)}
        for key in list(self._overlays):
            if key not in present or present[key] is not self._overlays[key].layer:
                props = self._overlays.pop(key)
                props.disconnect()
                props.remove()
        for key, layer in present.items():
            if key not in self._overlays:
                self._overlays[key] = surfaces_for(layer)(self, layer)
        self.update_depth_peeling()

    def _drop_base(self) -> None:
        if self._base_layer is not None:
            self.unlisten(self._base_layer.events, self._on_base_event)
        if self.volume_prop is not None:
            self.renderer.RemoveVolume(self.volume_prop)
        self.volume_prop = None
        self._volume_mapper = None
        self._base_layer = None
        self._base_grid = None

    def update_depth_peeling(self) -> None:
        """Depth peeling (exact translucency, about 2× slower frames) only while a visible surface is translucent."""
        translucent = any(a.GetVisibility() and a.GetProperty().GetOpacity() < 1.0
                          for props in getattr(self, "_overlays", {}).values() for a in props.actors)
        self.renderer.SetUseDepthPeeling(bool(translucent))

    def overlay_actors(self, layer: Layer) -> list[vtkActor]:
        """The actors drawing ``layer`` (empty for layers the 3D view does not draw)."""
        props = self._overlays.get(id(layer))
        return list(props.actors) if props else []

    # ---- crosshair and planes ----------------------------------------------------------------------
    def _build_crosshair(self) -> None:
        b = np.array(patient_bounds(self.document.base)).reshape(3, 2)
        diag = float(np.linalg.norm(b[:, 1] - b[:, 0]))
        self._sphere = vtkSphereSource()
        self._sphere.SetRadius(max(1.0, 0.012 * diag))
        self._sphere.SetThetaResolution(20)
        self._sphere.SetPhiResolution(14)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self._sphere.GetOutputPort())
        self.crosshair_actor = vtkActor()
        self.crosshair_actor.SetMapper(mapper)
        p = self.crosshair_actor.GetProperty()
        p.SetColor(*CROSSHAIR_COLOUR)
        p.SetAmbient(0.5)
        p.SetDiffuse(0.6)
        self.renderer.AddActor(self.crosshair_actor)
        self._place_crosshair(self.document.crosshair)

    def _place_crosshair(self, xyz: np.ndarray) -> None:
        self.crosshair_actor.SetPosition(*(float(v) for v in xyz))

    def _build_planes(self) -> None:
        self._plane_polys: dict[str, vtkPolyData] = {}
        self.plane_actors: dict[str, vtkActor] = {}
        for plane in ("axial", "coronal", "sagittal"):
            poly = vtkPolyData()
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(poly)
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*PLANE_COLOURS[plane])
            actor.GetProperty().SetLineWidth(2.0)
            actor.GetProperty().LightingOff()
            actor.SetVisibility(self._planes_visible)
            self.renderer.AddActor(actor)
            self._plane_polys[plane] = poly
            self.plane_actors[plane] = actor
        self._update_planes()

    def plane_corners(self, plane: str) -> np.ndarray:
        """(4, 3) LPS mm corners of the base-grid slice ``plane`` through the crosshair (voxel-centre extent)."""
        vol = self.document.base
        mapping = SliceMapping.for_volume(vol, plane)
        s = int(self.document.crosshair_index()[mapping.slice_axis])
        nk, nj, ni = vol.shape3d
        n = (ni - 1, nj - 1, nk - 1)
        a, b = sorted({0, 1, 2} - {mapping.slice_axis})
        corners = []
        for ua, ub in ((0, 0), (1, 0), (1, 1), (0, 1)):
            ijk = [0.0, 0.0, 0.0]
            ijk[mapping.slice_axis] = s
            ijk[a] = ua * n[a]
            ijk[b] = ub * n[b]
            corners.append(ijk)
        return vol.index_to_patient(np.array(corners))

    def _update_planes(self) -> None:
        if self.document.base.is_2d:
            return
        for plane, poly in self._plane_polys.items():
            pts = vtkPoints()
            for c in self.plane_corners(plane):
                pts.InsertNextPoint(*(float(v) for v in c))
            lines = vtkCellArray()
            lines.InsertNextCell(5)
            for idx in (0, 1, 2, 3, 0):
                lines.InsertCellPoint(idx)
            poly.SetPoints(pts)
            poly.SetLines(lines)
            poly.Modified()

    def show_planes(self, show: bool) -> None:
        """Show or hide the outlines of the axial, coronal and sagittal slices through the crosshair."""
        self._planes_visible = bool(show)
        for actor in self.plane_actors.values():
            actor.SetVisibility(self._planes_visible)
        self.changed()

    @property
    def planes_visible(self) -> bool:
        return self._planes_visible

    def _on_crosshair(self, xyz: np.ndarray) -> None:
        self._place_crosshair(xyz)
        self._update_planes()
        self.changed()

    # ---- frames ------------------------------------------------------------------------------------
    def set_size(self, width: int, height: int) -> None:
        """Render-window size in device pixels."""
        self.window.SetSize(max(1, int(width)), max(1, int(height)))

    def set_interacting(self, interacting: bool) -> None:
        """Trade quality for speed while the user drags, full quality otherwise.

        While interacting: coarser ray sampling and, on the CPU ray caster, no shading (its per-view shading
        tables cost most of a rotated frame: about 0.5 s vs 0.04 s for the 240²×155 brain at 400²).
        """
        self._interacting = bool(interacting)
        self.window.SetDesiredUpdateRate(15.0 if interacting else 0.0001)
        if self.volume_prop is not None:
            tf = self.transfer_function()
            cpu = self._shading_gain != 1.0
            self.volume_prop.GetProperty().SetShade(bool(tf.shade and not (interacting and cpu)))

    def render(self) -> None:
        """Draw a frame into the render window."""
        if self._closed:
            return
        if not self._gl_checked:
            self.window.Initialize()  # the OpenGL context, so that its renderer string can be read
            self._on_first_render()
        self.window.Render()
        if self.first_frame_s is None:
            self.first_frame_s = time.perf_counter() - self._created

    def grab(self) -> np.ndarray:
        """The render window's current back buffer as ``(H, W, 3)`` uint8, top row first (no re-render)."""
        self._grab.Modified()
        self._grab.Update()
        out = self._grab.GetOutput()
        w, h, _ = out.GetDimensions()
        a = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars())
        return np.ascontiguousarray(a.reshape(h, w, -1)[::-1, :, :3])

    def render_to_array(self) -> np.ndarray:
        """Render and return the frame as ``(H, W, 3)`` uint8, top row first."""
        self.render()
        return self.grab()

    def close(self, finalize: bool = True) -> None:
        """Stop following the Document; with ``finalize`` also release the window's OpenGL context.

        The QVTK widget finalizes its own window: its owner passes ``finalize=False`` and calls the
        widget's ``Finalize()``.
        """
        if self._closed:
            return
        self._closed = True
        for props in self._overlays.values():
            props.disconnect()
        self._overlays.clear()
        for signal, wrapper in self._listeners.values():
            signal.disconnect(wrapper)
        self._listeners.clear()
        self._grab.SetInput(None)
        if finalize:
            self.window.Finalize()
