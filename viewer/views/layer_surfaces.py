"""The 3D surfaces of overlay layers, one props class per layer kind (:data:`SURFACES`).

Label layers become smoothed surfaces (``vtkDiscreteFlyingEdges3D`` + ``vtkWindowedSincPolyDataFilter``),
heatmap layers nested iso-surfaces from the threshold upwards coloured through their colour map.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from viewer.model import colormaps
from viewer.model.layers import HeatmapLayer, LabelsLayer, Layer
from viewer.views.vtk_grid import GridImage, grid_image


class SurfaceHost(Protocol):
    """What a layer's surfaces need from the 3D scene that shows them (:class:`viewer.views.vtk_scene.Scene3D`)."""

    renderer: Any
    max_dim: int
    only_layers: Any

    def listen(self, signal: Any, handler: Callable) -> None: ...
    def unlisten(self, signal: Any, handler: Callable) -> None: ...
    def changed(self) -> None: ...
    def update_depth_peeling(self) -> None: ...


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


class LayerProps(ABC):
    """The VTK props showing one overlay layer; follows that layer's events.

    One subclass per layer kind (:data:`SURFACES`): it builds the kind's actors from the layer
    (:meth:`make_actors`) and says how opaque they are (:meth:`surface_opacity`); this class places them in
    patient space, shows, hides, fades and rebuilds them as the layer changes.
    """

    #: layer fields whose change rebuilds the actors
    rebuild_on: ClassVar[frozenset[str]] = frozenset({"volume"})

    def __init__(self, scene: SurfaceHost, layer: Layer) -> None:
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

class _LabelSurfaces(LayerProps):
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



class _HeatmapShells(LayerProps):
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
SURFACES: dict[type[Layer], type[LayerProps]] = {LabelsLayer: _LabelSurfaces, HeatmapLayer: _HeatmapShells}


def surfaces_for(layer: Layer) -> type[LayerProps] | None:
    """The props class for ``layer``'s kind (its type or nearest listed base class), or None."""
    return next((SURFACES[k] for k in type(layer).__mro__ if k in SURFACES), None)
