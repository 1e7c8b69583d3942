"""The 3D scene of a Document, built with VTK and free of Qt (the Qt widget is :mod:`viewer.views.view3d`).

Frames
------
* The VTK **world frame is patient LPS in mm** (x → patient Left, y → Posterior, z → Superior), the same
  frame as :attr:`viewer.model.volume.Volume.affine` and :attr:`viewer.model.document.Document.crosshair`.
* Each volume becomes a ``vtkImageData`` on its own voxel grid with origin 0, spacing = the affine's column
  norms (mm per voxel along i, j, k) and identity direction; its prop gets a user matrix holding the affine's
  unit direction cosines and translation, so that point ``(i·si, j·sj, k·sk)`` lands at
  ``affine @ (i, j, k, 1)``. Oblique and mirrored affines are therefore drawn where they belong.
* Arrays indexed ``[k, j, i]`` and C-contiguous are handed to VTK without a copy (VTK's x index, i, runs
  fastest). Volumes above ``max_dim`` voxels along an axis are strided (nearest sample, dtype kept) for
  rendering only; float64 is never created (float64 input is cast to float32).

Rendering
---------
The base image layer is volume rendered with ``vtkSmartVolumeMapper``. On a software OpenGL (Mesa llvmpipe,
as on machines without a GPU) its GPU ray caster is 5–30× slower than VTK's multi-threaded CPU ray caster,
so the render mode is chosen from the OpenGL renderer string at the first frame (override with the
environment variable ``LUCENT_VTK_VOLUME_MODE=gpu|cpu``). Label layers become smoothed surfaces
(``vtkDiscreteFlyingEdges3D`` + ``vtkWindowedSincPolyDataFilter``), heatmap layers nested iso-surfaces from
the threshold upwards coloured through their colour map. The crosshair is a sphere; the three slice planes
of the base grid (those the MPR views show) can be drawn as outlines.

Importing this module imports VTK (about 0.2–0.5 s cold): import it lazily.
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from viewer.model import colormaps
from viewer.model.document import Document
from viewer.model.geometry import SliceMapping
from viewer.model.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer
from viewer.model.volume import Volume


def ensure_headless_env() -> None:
    """On Linux without a display, make VTK create EGL render windows (skips the X probe).

    Must run before the first ``vtkRenderWindow`` is created; it only sets a default, never overrides.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


ensure_headless_env()

# ruff: noqa: E402  (VTK imports follow the environment set-up above on purpose)
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers interactor styles)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (registers volume mappers)
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkLogger, vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D
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

# VTK's own warnings (an empty iso-level "has no data to smooth") are noise on a user's terminal; errors stay.
vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)

PRESETS = ("ct_bone", "ct_soft_tissue", "mr")
CAMERAS = ("A", "P", "L", "R", "S", "I")

# Camera presets in patient LPS: (direction of projection = where the camera looks, view up).
# Screen right = direction × up, so from "A" patient Left is on screen right, from "I" too (radiological
# axial), from "L" Posterior is on screen right, from "R" Anterior, from "P" and "S" patient Right.
_CAMERA_FRAMES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "A": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),    # camera anterior of the face, looking toward posterior
    "P": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),   # behind the head, looking toward anterior
    "L": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),   # at the patient's left, looking toward the right
    "R": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),    # at the patient's right, looking toward the left
    "S": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),  # above the head, looking down; anterior up
    "I": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),   # below the feet, looking up; anterior up
}

PLANE_COLOURS: dict[str, tuple[float, float, float]] = {  # as 3D Slicer: axial red, coronal green, sagittal yellow
    "axial": (0.95, 0.35, 0.35),
    "coronal": (0.45, 0.85, 0.40),
    "sagittal": (0.95, 0.85, 0.30),
}
CPU_SHADING_GAIN = 1.8  # ambient/diffuse factor that matches the CPU ray caster's brightness to the GPU's
CROSSHAIR_COLOUR = (60 / 255, 200 / 255, 1.0)  # the slice views' crosshair pen colour


def offscreen_window(width: int, height: int) -> vtkRenderWindow:
    """An offscreen render window of ``width`` × ``height`` pixels.

    EGL on Linux when VTK has it (its context belongs to no X connection, so it can live on a render thread
    beside Qt's own X connection), else the platform default.
    """
    window: vtkRenderWindow | None = None
    if sys.platform.startswith("linux"):
        try:
            from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

            window = vtkEGLRenderWindow()
        except ImportError:
            window = None
    window = window or vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(int(width), int(height))
    return window


# ---- numpy ↔ VTK -------------------------------------------------------------------------------------
@dataclass
class GridImage:
    """A volume as ``vtkImageData`` plus the user matrix that places it in patient LPS mm.

    Attributes:
        image: origin 0, spacing (mm along i, j, k after any striding), identity direction.
        matrix: 4×4 image-data coordinates (mm) → patient LPS (mm): unit direction cosines + translation.
        array: the numpy array whose buffer ``image`` shares; kept alive here.
        stride: voxel stride applied per axis (i, j, k) for rendering.
    """

    image: vtkImageData
    matrix: vtkMatrix4x4
    array: np.ndarray
    stride: tuple[int, int, int]


def user_matrix(affine: np.ndarray) -> np.ndarray:
    """The 4×4 rigid-with-reflection part of ``affine``: columns normalised, translation kept."""
    m = np.array(affine, dtype=np.float64)
    m[:3, :3] = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    return m


def to_vtk_matrix(m: np.ndarray) -> vtkMatrix4x4:
    """numpy 4×4 → ``vtkMatrix4x4``."""
    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def grid_image(volume: Volume, max_dim: int = 256, dtype: np.dtype | None = None) -> GridImage:
    """``volume`` (grey, 3D) as image data on its own grid; strided above ``max_dim`` voxels per axis.

    ``dtype`` optionally casts (labels to an integer type); otherwise the dtype is kept, except float64 →
    float32 and bool → uint8. No copy is made when the array is already C-contiguous and unstrided.
    """
    a = volume.data3d
    if volume.rgb:
        raise ValueError("colour volumes are not volume rendered")
    nk, nj, ni = a.shape
    stride = tuple(max(1, -(-n // max_dim)) for n in (ni, nj, nk))
    if stride != (1, 1, 1):
        a = a[:: stride[2], :: stride[1], :: stride[0]]
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    elif a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.bool_:
        a = a.view(np.uint8)
    a = np.ascontiguousarray(a)
    img = vtkImageData()
    img.SetDimensions(a.shape[2], a.shape[1], a.shape[0])
    sp = volume.spacing
    img.SetSpacing(sp[0] * stride[0], sp[1] * stride[1], sp[2] * stride[2])
    img.SetOrigin(0.0, 0.0, 0.0)
    scalars = numpy_support.numpy_to_vtk(a.reshape(-1), deep=False)
    scalars.SetName("values")
    img.GetPointData().SetScalars(scalars)
    return GridImage(img, to_vtk_matrix(user_matrix(volume.affine)), a, stride)  # type: ignore[arg-type]


def patient_bounds(volume: Volume) -> tuple[float, float, float, float, float, float]:
    """(xmin, xmax, ymin, ymax, zmin, zmax) in LPS mm of the voxel centres' bounding box."""
    nk, nj, ni = volume.shape3d
    corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float)
    p = volume.index_to_patient(corners)
    lo, hi = p.min(0), p.max(0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])


# ---- transfer functions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferFunction:
    """Volume-rendering transfer function in the image's value units (HU for CT).

    ``opacity`` is per unit length of 1 mm (VTK's scalar opacity unit distance is set to 1 mm).
    """

    colour: tuple[tuple[float, float, float, float], ...]  # (value, r, g, b) with r, g, b in [0, 1]
    opacity: tuple[tuple[float, float], ...]               # (value, opacity)
    shade: bool = True
    ambient: float = 0.25
    diffuse: float = 0.8
    specular: float = 0.2


def robust_range(volume: Volume, low_pct: float = 2.0, high_pct: float = 99.5) -> tuple[float, float]:
    """Percentiles of the foreground (values above the minimum) from a ≤ ~1 M voxel subsample."""
    a = volume.data3d
    step = max(1, round((a.size / 1_000_000) ** (1 / 3)))
    s = np.asarray(a[::step, ::step, ::step], dtype=np.float32).reshape(-1)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return 0.0, 1.0
    fg = s[s > s.min()]
    if fg.size < 0.01 * s.size:
        fg = s
    lo, hi = np.percentile(fg, [low_pct, high_pct])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def preset_transfer_function(name: str, volume: Volume) -> TransferFunction:
    """The transfer function of preset ``name`` ("ct_bone", "ct_soft_tissue" or "mr") for ``volume``.

    The CT presets use fixed Hounsfield units; "mr" is scaled to the image's robust foreground range, so it
    also serves images of unknown units.
    """
    if name == "ct_bone":
        return TransferFunction(
            colour=((-1000, 0.0, 0.0, 0.0), (140, 0.55, 0.25, 0.15), (250, 0.88, 0.62, 0.35),
                    (600, 1.0, 0.92, 0.80), (1500, 1.0, 1.0, 0.95)),
            opacity=((-1000, 0.0), (140, 0.0), (250, 0.15), (500, 0.55), (1200, 0.85), (3000, 0.9)),
            specular=0.3)
    if name == "ct_soft_tissue":
        return TransferFunction(
            colour=((-1000, 0.0, 0.0, 0.0), (-500, 0.55, 0.25, 0.15), (-100, 0.90, 0.70, 0.50),
                    (40, 0.80, 0.30, 0.25), (200, 0.95, 0.75, 0.60), (400, 1.0, 0.95, 0.88),
                    (1500, 1.0, 1.0, 1.0)),
            opacity=((-1000, 0.0), (-600, 0.0), (-400, 0.004), (-100, 0.006), (20, 0.02), (80, 0.06),
                     (250, 0.3), (600, 0.8), (3000, 0.9)),
            ambient=0.3, diffuse=0.75, specular=0.15)
    if name == "mr":
        lo, hi = robust_range(volume)
        w = hi - lo
        return TransferFunction(
            colour=((lo, 0.0, 0.0, 0.0), (lo + 0.12 * w, 0.55, 0.50, 0.47), (lo + 0.5 * w, 0.92, 0.88, 0.84),
                    (hi, 1.0, 1.0, 1.0)),
            opacity=((lo, 0.0), (lo + 0.1 * w, 0.0), (lo + 0.25 * w, 0.02), (lo + 0.5 * w, 0.05),
                     (hi, 0.12)),
            ambient=0.35, diffuse=0.7, specular=0.1)
    raise KeyError(f"unknown preset {name!r}; choose one of {PRESETS}")


def visible_from(tf: TransferFunction) -> float:
    """The value above which ``tf`` makes voxels visible (the last zero-opacity point before any opacity)."""
    start = tf.opacity[0][0]
    for v, o in tf.opacity:
        if o > 0:
            break
        start = v
    return float(start)


def content_bounds(volume: Volume, threshold: float, max_samples: int = 500_000
                   ) -> tuple[float, float, float, float, float, float] | None:
    """LPS mm bounds of the voxels above ``threshold`` (from a strided subsample); None when there are none.

    The subsampled voxels' own patient positions are bounded (not an index box), so oblique grids give
    tight bounds; the result is grown by one stride on each side.
    """
    a = volume.data3d
    step = max(1, round((a.size / max_samples) ** (1 / 3)))
    sub = a[::step, ::step, ::step]
    kji = np.argwhere(sub > threshold)
    if kji.size == 0:
        return None
    p = volume.index_to_patient(kji[:, ::-1].astype(np.float64) * step)
    pad = step * max(volume.spacing)
    mn, mx = p.min(0) - pad, p.max(0) + pad
    full = np.array(patient_bounds(volume)).reshape(3, 2)
    mn, mx = np.maximum(mn, full[:, 0]), np.minimum(mx, full[:, 1])
    return float(mn[0]), float(mx[0]), float(mn[1]), float(mx[1]), float(mn[2]), float(mx[2])


def default_preset(volume: Volume) -> str:
    """"ct_bone" for CT, "mr" otherwise (the range-scaled preset)."""
    return "ct_bone" if volume.modality.upper() == "CT" else "mr"


def label_values(labels: np.ndarray, slab: int = 8) -> list[int]:
    """The label values > 0 present in ``labels`` (non-negative integers), counted ``slab`` slices at a time.

    Counting in slabs keeps each numpy call short, so a render thread doing it never holds the GIL for long
    (one bincount over a 240×240×155 mask holds it for ~0.1–0.2 s: a visible GUI stall).
    """
    counts = np.zeros(1, np.int64)
    for k in range(0, labels.shape[0], slab):
        c = np.bincount(labels[k:k + slab].reshape(-1))
        if len(c) > len(counts):
            c[: len(counts)] += counts
            counts = c
        else:
            counts[: len(c)] += c
    return [int(v) for v in np.nonzero(counts)[0] if v > 0]


# ---- layer props -------------------------------------------------------------------------------------
def _smooth_surface(port, iterations: int = 15) -> vtkPolyDataNormals:
    """Windowed-sinc smoothing + normals after an iso-surface filter's output port."""
    smooth = vtkWindowedSincPolyDataFilter()
    smooth.SetInputConnection(port)
    smooth.SetNumberOfIterations(iterations)
    smooth.SetPassBand(0.01)
    smooth.BoundarySmoothingOff()
    smooth.FeatureEdgeSmoothingOff()
    smooth.NonManifoldSmoothingOn()
    smooth.NormalizeCoordinatesOn()
    normals = vtkPolyDataNormals()
    normals.SetInputConnection(smooth.GetOutputPort())
    normals.SetFeatureAngle(60.0)
    normals.ConsistencyOn()
    normals.SplittingOff()
    return normals


class _LayerProps(ABC):
    """The VTK props showing one overlay layer; follows that layer's events.

    One subclass per layer kind (:data:`SURFACES`): it builds the kind's actors from the layer
    (:meth:`make_actors`) and says how opaque they are (:meth:`surface_opacity`); this class places them in
    patient space, shows, hides, fades and rebuilds them as the layer changes.
    """

    #: layer fields whose change rebuilds the actors
    rebuild_on: ClassVar[frozenset[str]] = frozenset({"volume"})

    def __init__(self, scene: Scene3D, layer: Layer) -> None:
        self.scene = scene
        self.layer = layer
        self.actors: list[vtkActor] = []
        self._grid: GridImage | None = None
        self.build()
        scene.listen(layer.events, self._on_event)

    def disconnect(self) -> None:
        self.scene.unlisten(self.layer.events, self._on_event)

    def _on_event(self, info) -> None:
        name = info.signal.name
        if name == "visible":
            self._apply_visibility()
        elif name == "opacity":
            self._apply_opacity()
        elif name in self.rebuild_on:
            self.remove()
            self._grid = None if name == "volume" else self._grid
            self.build()
        else:
            return
        self.scene.changed()

    def _apply_visibility(self) -> None:
        shown = bool(self.layer.visible) or self.scene.only_layers is not None  # a compare pane: always drawn
        for a in self.actors:
            a.SetVisibility(shown)
        self.scene.update_depth_peeling()

    def surface_opacity(self) -> float:
        """Opacity of this layer's surfaces: ``min(1, 2 × layer.opacity)``. In 2D a map or mask is laid over the
        film at 0.4–0.5 so that the film shows through; in 3D its surfaces sit inside a volume rendering, and
        the same setting makes them (nearly) opaque; lower values fade them."""
        return min(1.0, 2.0 * float(np.clip(self.layer.opacity, 0.0, 1.0)))

    @abstractmethod
    def make_actors(self) -> list[vtkActor]:
        """Build this kind's actors from the layer (on its own grid, :attr:`_grid`); [] when there is nothing."""

    def _apply_opacity(self) -> None:
        op = self.surface_opacity()
        n = len(self.actors)
        for idx, a in enumerate(self.actors):
            a.GetProperty().SetOpacity(op if n == 1 else op * (0.5 + 0.5 * idx / (n - 1)))
        self.scene.update_depth_peeling()

    def remove(self) -> None:
        for a in self.actors:
            self.scene.renderer.RemoveActor(a)
        self.actors = []

    def build(self) -> None:
        if self.layer.volume.rgb:
            return
        self.actors = self.make_actors()
        for a in self.actors:
            a.SetUserMatrix(self._grid.matrix if self._grid else None)
            self.scene.renderer.AddActor(a)
        self._apply_opacity()
        self._apply_visibility()

class _LabelSurfaces(_LayerProps):
    """A label mask: one smoothed surface per label value, in the labels' colours."""

    def make_actors(self) -> list[vtkActor]:
        layer = self.layer
        a = layer.volume.data3d
        vmax = int(np.nanmax(a)) if a.size else 0
        dtype = np.dtype(np.uint8) if vmax < 256 else np.dtype(np.int32)
        if self._grid is None:
            self._grid = grid_image(layer.volume, self.scene.max_dim, dtype=dtype)
        values = label_values(self._grid.array)
        if not values:
            return []
        fe = vtkDiscreteFlyingEdges3D()
        fe.SetInputData(self._grid.image)
        for n, v in enumerate(values):
            fe.SetValue(n, float(v))
        fe.ComputeScalarsOn()
        normals = _smooth_surface(fe.GetOutputPort())
        normals.Update()  # extract now, not inside the first Render (an explicit Update lets other threads run)
        lut = vtkLookupTable()
        top = max(values)
        lut.SetNumberOfTableValues(top + 1)
        lut.SetTableRange(0, top)
        for v in range(top + 1):
            r, g, b = colormaps.label_colour(v) if v > 0 else (0, 0, 0)
            lut.SetTableValue(v, r / 255, g / 255, b / 255, 1.0)
        lut.Build()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.SetLookupTable(lut)
        mapper.SetScalarRange(0, top)
        mapper.SetScalarModeToUsePointData()
        mapper.SetColorModeToMapScalars()
        mapper.ScalarVisibilityOn()
        actor = vtkActor()
        actor.SetMapper(mapper)
        p = actor.GetProperty()
        p.SetAmbient(0.35)
        p.SetDiffuse(0.7)
        p.SetSpecular(0.15)
        return [actor]



class _HeatmapShells(_LayerProps):
    """A continuous map: three nested iso-surfaces from the threshold toward the maximum, coloured through the
    layer's colour map; the inner ones more opaque."""

    rebuild_on = frozenset({"volume", "threshold", "value_range", "colormap"})

    def make_actors(self) -> list[vtkActor]:
        layer = self.layer
        if self._grid is None:
            self._grid = grid_image(layer.volume, self.scene.max_dim)
        low, high = (float(v) for v in layer.value_range)
        if not high > low:
            low, high = layer.volume.value_range()
        t = float(layer.threshold) if layer.threshold is not None else low + 0.5 * (high - low)
        t = min(max(t, low), high)
        table = colormaps.lut(layer.colormap)
        actors = []
        for f in (0.0, 1 / 3, 2 / 3):  # nested shells from the threshold toward the maximum
            level = t + f * (high - t)
            fe = vtkFlyingEdges3D()
            fe.SetInputData(self._grid.image)
            fe.SetValue(0, level)
            fe.ComputeScalarsOff()
            normals = _smooth_surface(fe.GetOutputPort(), iterations=10)
            normals.Update()
            mapper = vtkPolyDataMapper()
            mapper.SetInputConnection(normals.GetOutputPort())
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            pos = (level - low) / (high - low) if high > low else 1.0
            r, g, b = table[int(np.clip(0.25 + 0.75 * pos, 0, 1) * 255), :3] / 255.0
            actor.GetProperty().SetColor(float(r), float(g), float(b))
            actors.append(actor)
        return actors


#: The 3D props of each overlay kind (layers of other kinds, e.g. images, are not drawn as surfaces).
SURFACES: dict[type[Layer], type[_LayerProps]] = {LabelsLayer: _LabelSurfaces, HeatmapLayer: _HeatmapShells}


def surfaces_for(layer: Layer) -> type[_LayerProps] | None:
    """The props class for ``layer``'s kind (its type or nearest listed base class), or None."""
    return next((SURFACES[k] for k in type(layer).__mro__ if k in SURFACES), None)


# ---- the scene -------------------------------------------------------------------------------------
class Scene3D:
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
        self._overlays: dict[int, _LayerProps] = {}
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

    # ---- camera ------------------------------------------------------------------------------------
    def bounds(self) -> tuple[float, float, float, float, float, float]:
        """LPS mm bounds that the camera presets frame: the visible content of the base volume.

        That is the voxels the current preset makes visible (so that a head in a large field of view fills
        the view), or the whole volume when there are none.
        """
        if self._content_bounds is None:
            vol = self.document.base
            b = None
            if self._base_layer is not None and not vol.rgb and not vol.is_2d:
                b = content_bounds(vol, visible_from(self.transfer_function()))
            self._content_bounds = b or patient_bounds(vol)
        return self._content_bounds

    def framed_bounds(self) -> tuple[float, float, float, float, float, float]:
        """:meth:`bounds` grown to hold the visible overlay surfaces (what camera presets frame)."""
        b = np.array(self.bounds(), float).reshape(3, 2)
        for props in self._overlays.values():
            for a in props.actors:
                if a.GetVisibility():
                    ab = np.array(a.GetBounds(), float).reshape(3, 2)
                    if np.all(np.isfinite(ab)) and np.all(ab[:, 1] >= ab[:, 0]):
                        b[:, 0] = np.minimum(b[:, 0], ab[:, 0])
                        b[:, 1] = np.maximum(b[:, 1], ab[:, 1])
        return tuple(float(v) for v in b.reshape(-1))  # type: ignore[return-value]

    def set_camera(self, name: str) -> None:
        """Look at the base volume from patient side ``name`` (A, P, L, R, S or I); see :data:`CAMERAS`."""
        key = name.upper()
        if key not in _CAMERA_FRAMES:
            raise KeyError(f"unknown camera {name!r}; choose one of {CAMERAS}")
        direction, up = _CAMERA_FRAMES[key]
        b = np.array(self.framed_bounds()).reshape(3, 2)
        centre = b.mean(1)
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre - 500.0 * np.asarray(direction)))
        cam.SetViewUp(*up)
        cam.SetViewAngle(30.0)
        self._fit(cam, centre, np.asarray(direction, float), np.asarray(up, float))
        self.camera_name = key
        self.changed()

    def _fit(self, cam, centre: np.ndarray, direction: np.ndarray, up: np.ndarray, margin: float = 1.12) -> None:
        """Place the camera on ``-direction`` from ``centre`` so that the framed box just fills the view."""
        b = np.array(self.framed_bounds()).reshape(3, 2)
        corners = np.array([[x, y, z] for x in b[0] for y in b[1] for z in b[2]]) - centre
        right = np.cross(direction, up)
        half_w = np.abs(corners @ right).max()
        half_h = np.abs(corners @ up).max()
        half_d = np.abs(corners @ direction).max()
        w, h = self.window.GetSize()
        aspect = w / h if h > 0 else 1.0
        t = np.tan(np.radians(cam.GetViewAngle() / 2))
        dist = margin * max(half_h / t, half_w / (t * aspect)) + half_d
        cam.SetPosition(*(centre - dist * direction))
        self.renderer.ResetCameraClippingRange()

    def camera_state(self) -> dict[str, list[float]]:
        """Camera position, focal point, view-up (patient LPS mm) and view angle, for workspaces."""
        cam = self.renderer.GetActiveCamera()
        return {"position": list(cam.GetPosition()), "focal_point": list(cam.GetFocalPoint()),
                "view_up": list(cam.GetViewUp()), "view_angle": [cam.GetViewAngle()]}

    def set_camera_state(self, state: dict[str, list[float]]) -> None:
        """Restore a :meth:`camera_state`."""
        cam = self.renderer.GetActiveCamera()
        cam.SetPosition(*state["position"])
        cam.SetFocalPoint(*state["focal_point"])
        cam.SetViewUp(*state["view_up"])
        cam.SetViewAngle(state["view_angle"][0])
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def reset_camera(self) -> None:
        """Back to the anterior view, framing the whole volume."""
        self.set_camera("A")

    def rotate(self, azimuth_deg: float, elevation_deg: float) -> None:
        """Orbit the camera about its focal point (degrees; positive azimuth turns the scene to the left)."""
        cam = self.renderer.GetActiveCamera()
        cam.Azimuth(azimuth_deg)
        cam.Elevation(elevation_deg)
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def zoom(self, factor: float) -> None:
        """Move the camera toward (factor > 1) or away from the focal point."""
        self.renderer.GetActiveCamera().Dolly(factor)
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def pan(self, dx_px: float, dy_px: float) -> None:
        """Shift the view by (dx, dy) screen pixels (x right, y down), moving camera and focal point."""
        cam = self.renderer.GetActiveCamera()
        w, h = self.window.GetSize()
        pos, fp = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
        dist = float(np.linalg.norm(pos - fp))
        mm_per_px = 2.0 * dist * np.tan(np.radians(cam.GetViewAngle() / 2)) / max(h, 1)
        up = np.array(cam.GetViewUp())
        right = np.cross(fp - pos, up)
        right /= np.linalg.norm(right) or 1.0
        shift = (-dx_px * right + dy_px * up) * mm_per_px
        cam.SetPosition(*(pos + shift))
        cam.SetFocalPoint(*(fp + shift))
        self.renderer.ResetCameraClippingRange()
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
