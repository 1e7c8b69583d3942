"""Graphics items that draw one Layer on one slice view (pyqtgraph ImageItem + LUT + levels).

One visual class per layer kind, as napari pairs each layer type with its own vispy layer: :class:`LayerImage`
holds what every kind shares (sampling the layer's slice onto the view's grid, visibility, opacity, following
the layer's events) and :class:`ImageLayerImage`, :class:`LabelsLayerImage` and :class:`HeatmapLayerImage` say
how their kind samples (nearest or linear), which layer fields redraw it, how its pixels are coloured and what
legend it has. :func:`layer_image` picks the class for a layer from :data:`LAYER_IMAGES` (by the layer's type
or its nearest base class), so a new layer kind brings its own visual instead of another ``isinstance`` branch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter

from viewer.model import colormaps
from viewer.model.geometry import OverlaySampler, SliceMapping
from viewer.model.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer
from viewer.model.volume import Volume
from viewer.views.annotations_overlay import ColorBar


def label_outline(labels: np.ndarray) -> np.ndarray:
    """Keep only the boundary pixels of each label region (4-neighbourhood) of a 2D label slice."""
    out = labels.copy()
    inner = np.zeros(labels.shape, bool)
    core = labels[1:-1, 1:-1]
    inner[1:-1, 1:-1] = ((core == labels[:-2, 1:-1]) & (core == labels[2:, 1:-1])
                         & (core == labels[1:-1, :-2]) & (core == labels[1:-1, 2:]))
    out[inner] = 0
    return out


_F = QImage.Format
#: QImage formats that QPainter's raster engine draws without converting them on every paint.
_DRAW_FORMAT = {_F.Format_Grayscale8: _F.Format_RGB32, _F.Format_RGB888: _F.Format_RGB32,
                _F.Format_Indexed8: _F.Format_ARGB32_Premultiplied, _F.Format_RGBA8888: _F.Format_ARGB32_Premultiplied,
                _F.Format_ARGB32: _F.Format_ARGB32_Premultiplied, _F.Format_RGBX8888: _F.Format_RGB32}


class SmoothImageItem(pg.ImageItem):
    """An ImageItem that can be drawn with bilinear scaling (heatmaps shown at their own resolution).

    The rendered image is converted once per render to the format the raster paint engine blends directly (RGB32
    for opaque, premultiplied ARGB32 for translucent), instead of Qt converting it on every repaint.
    """

    smooth = False

    def render(self) -> None:
        super().render()
        fast = _DRAW_FORMAT.get(self.qimage.format()) if self.qimage is not None else None
        if fast is not None:
            self.qimage = self.qimage.convertToFormat(fast)

    def paint(self, p, *args) -> None:
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        super().paint(p, *args)


class LayerImage(ABC):
    """Draws ``layer`` on the screen grid of ``base`` seen through ``mapping``.

    The base grid occupies the scene rectangle (0, 0, cols·pw, rows·ph) in millimetres, so pixel (col, row)
    covers [col·pw, (col+1)·pw] × [row·ph, (row+1)·ph] and its centre is at ((col+½)·pw, (row+½)·ph).

    Layers on the base grid are drawn slice by slice. Layers on another grid parallel to it (an engine's
    coarser output) are drawn at their own resolution, scaled into the rectangle their voxels cover —
    bilinear for heatmaps, blocky for labels — which is exact and costs no resampling. Oblique grids are
    resampled per slice (:class:`~viewer.model.geometry.OverlaySampler`).
    """

    def __init__(self, layer: Layer, base: Volume, mapping: SliceMapping, z: int, shown: bool = True,
                 pinned: bool = False) -> None:
        """``shown=False`` keeps the layer hidden in this view whatever its ``visible``; ``pinned=True`` draws it
        whatever its ``visible`` (a compare pane shows the overlay it was given even when the list hides it)."""
        self.layer = layer
        self.shown = shown
        self.pinned = pinned
        self.mapping = mapping
        self._base = base
        self.item = SmoothImageItem()
        self.item.setZValue(z)
        self._make_sampler()
        rows, cols = mapping.screen_shape
        pw, ph = mapping.pixel_size
        self._full_rect = QRectF(0, 0, cols * pw, rows * ph)
        self._rect = self._full_rect
        self._slice: int | None = None
        self._img: np.ndarray | None = None  # what is drawn: screen grid, or the layer's own pixels
        self._raw: np.ndarray | None = None
        layer.events.connect(self._on_layer_event)

    #: resampling order of the kind (0 nearest: labels and images on the base grid; 1 linear: maps)
    order: ClassVar[int] = 0
    #: layer fields whose change redraws the current slice (others only change visibility or opacity)
    redraw_on: ClassVar[frozenset[str]] = frozenset()
    #: whether ROI statistics read this kind's values (continuous maps)
    measured: ClassVar[bool] = False

    def _make_sampler(self) -> None:
        order = self.order
        self.sampler = OverlaySampler(self._base, self.layer.volume, self.mapping, order=order,
                                      fill=np.nan if order else 0)
        self.native = not self.sampler.same_grid and self.sampler.axis_parallel
        self.item.smooth = self.native and order == 1

    def disconnect(self) -> None:
        self.layer.events.disconnect(self._on_layer_event)

    def _on_layer_event(self, info) -> None:  # psygnal EmissionInfo
        name = info.signal.name
        if name == "volume":  # a query layer answering a new query: its map may lie on another grid
            self._make_sampler()
            slice_index, self._slice = self._slice, None
            if slice_index is not None:
                self.show_slice(slice_index)
        elif name in self.redraw_on:
            self._render()
        else:
            self._apply_visibility()

    @property
    def drawn(self) -> bool:
        """Whether this view draws the layer now (its visibility, or pinned in a compare pane)."""
        return self.shown and (self.pinned or bool(self.layer.visible))

    def _apply_visibility(self) -> None:
        self.item.setVisible(self.drawn)
        self.item.setOpacity(float(self.layer.opacity))

    def show_slice(self, slice_index: int) -> None:
        """Take the layer's pixels for ``slice_index`` and draw them; nothing to do when that slice is already shown
        (the crosshair moved within it). Display changes (window, colour map…) redraw through the layer's events."""
        if slice_index == self._slice and self._img is not None:
            return
        self._slice = slice_index
        self._img = self._raw = None
        self._rect = self._full_rect
        if 0 <= slice_index < self.mapping.n_slices:
            if self.native:
                found = self.sampler.native_slice(slice_index)
                if found is not None:
                    self._img, (x, y, w, h) = found
                    pw, ph = self.mapping.pixel_size
                    self._rect = QRectF(x * pw, y * ph, w * pw, h * ph)
            else:
                self._img = self._raw = self.sampler.sample(slice_index)
        self._render()

    @property
    def raw(self) -> np.ndarray | None:
        """The layer's values on the current slice on the base view's screen grid (before colour mapping)."""
        if self._raw is None and self.native and self._slice is not None and 0 <= self._slice < self.mapping.n_slices:
            self._raw = self.sampler.sample(self._slice)
        return self._raw

    def _render(self) -> None:
        self._apply_visibility()
        if self._img is None:
            self.item.clear()
            return
        self.draw(self._img)

    @abstractmethod
    def draw(self, img: np.ndarray) -> None:
        """Colour ``img`` (this kind's values on the current slice) into the image item, in ``self._rect``."""

    def colorbar(self) -> ColorBar | None:
        """The colour bar this kind shows in the view's corner while drawn (None: none)."""
        return None


class ImageLayerImage(LayerImage):
    """An image: grey (or a colour map) through the layer's window, or RGB as stored."""

    redraw_on = frozenset({"window", "colormap"})

    def draw(self, img: np.ndarray) -> None:
        layer = self.layer
        if layer.volume.rgb:
            rgb = img[..., :3]
            levels = (0, 255) if rgb.dtype == np.uint8 else (float(rgb.min()), float(rgb.max()) or 1.0)
            self.item.setImage(rgb, levels=levels, autoLevels=False, lut=None, rect=self._rect)
        else:
            lo, hi = layer.window.levels if layer.window else (0.0, 1.0)
            lut = None if layer.colormap == "grey" else colormaps.lut(layer.colormap)
            self.item.setImage(img, levels=(lo, hi), autoLevels=False, lut=lut, rect=self._rect)


class LabelsLayerImage(LayerImage):
    """Integer labels in their categorical colours, filled or as outlines."""

    redraw_on = frozenset({"outline", "colormap"})

    def draw(self, img: np.ndarray) -> None:
        lab = np.asarray(img)
        if lab.dtype.kind == "f":
            lab = np.nan_to_num(lab)
        lab = (lab.astype(np.int64) % 256).astype(np.uint8)
        if self.layer.outline:
            lab = label_outline(lab)
        self.item.setImage(lab, levels=(0, 255), autoLevels=False, lut=colormaps.label_lut(), rect=self._rect)


class HeatmapLayerImage(LayerImage):
    """A continuous map through its colour map over its value range, transparent below the threshold: uint8
    indices into :func:`~viewer.model.colormaps.indexed_lut` (the image item's quick path), which is
    :func:`~viewer.model.colormaps.heatmap_rgba` — the colours exports and ``lucent infer`` use."""

    order = 1
    redraw_on = frozenset({"colormap", "value_range", "threshold"})
    measured = True

    def draw(self, img: np.ndarray) -> None:
        layer = self.layer
        lo, hi = layer.value_range
        self.item.setImage(colormaps.to_indices(img, lo, hi, layer.threshold), levels=(0, 255), autoLevels=False,
                           lut=colormaps.indexed_lut(layer.colormap), rect=self._rect)

    def colorbar(self) -> ColorBar:
        layer = self.layer
        return ColorBar(colormaps.lut(layer.colormap), *layer.value_range, layer.legend or layer.name, layer.units)


#: The visual of each layer kind; :func:`layer_image` also finds a subclass's nearest listed base class.
LAYER_IMAGES: dict[type[Layer], type[LayerImage]] = {
    ImageLayer: ImageLayerImage,
    LabelsLayer: LabelsLayerImage,
    HeatmapLayer: HeatmapLayerImage,
}


def layer_image(layer: Layer, base: Volume, mapping: SliceMapping, z: int, shown: bool = True,
                pinned: bool = False) -> LayerImage:
    """The visual for ``layer``'s kind (see :data:`LAYER_IMAGES`) on the view ``mapping`` of ``base``."""
    for kind in type(layer).__mro__:
        if kind in LAYER_IMAGES:
            return LAYER_IMAGES[kind](layer, base, mapping, z, shown=shown, pinned=pinned)
    raise TypeError(f"no slice-view visual for {type(layer).__name__}")
