"""Layers: a Volume plus how it is displayed. Evented (psygnal) so that views follow changes.

Kinds:
* :class:`ImageLayer` — grey or colour image shown through a window/level.
* :class:`LabelsLayer` — integer label mask drawn with a categorical colour table (fill or outline).
* :class:`HeatmapLayer` — continuous map (saliency, similarity) drawn through a colour map over a value
  range, with a threshold below which it is transparent and a legend (colour bar) naming its units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psygnal import evented
from psygnal.containers import EventedList

from viewer.model.presentation import HEATMAP_OPACITY, MASK_OPACITY
from viewer.model.volume import Volume
from viewer.model.window_level import WindowLevel, default_window


@evented
@dataclass(eq=False)
class Layer:
    """Common display state. ``opacity`` in [0, 1].

    ``provenance`` says where an overlay came from ("multires_cxr, weights sha256 1a2b3c4d…"), for legends
    and exported screenshots; empty for images the user opened.
    """

    name: str
    volume: Volume
    visible: bool = True
    opacity: float = 1.0
    colormap: str = "grey"
    provenance: str = ""

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Layer").lower()


@evented
@dataclass(eq=False)
class ImageLayer(Layer):
    """An image shown through ``window`` (width/centre in the image's units, HU for CT)."""

    window: WindowLevel | None = None

    def __post_init__(self) -> None:
        if self.window is None and not self.volume.rgb:
            self.window = default_window(self.volume.metadata, self.volume.array)


@evented
@dataclass(eq=False)
class LabelsLayer(Layer):
    """Integer labels; 0 is background. ``label_names`` maps value → name for the legend."""

    colormap: str = "labels"
    opacity: float = MASK_OPACITY
    outline: bool = False
    label_names: dict[int, str] = field(default_factory=dict)


@evented
@dataclass(eq=False)
class HeatmapLayer(Layer):
    """A continuous map shown over ``value_range`` (low, high) through ``colormap``.

    Values below ``threshold`` (when set) are transparent. ``units`` and ``legend`` label its colour bar.
    ``query``: the typed finding this map answers ("" for other maps); a new query to the same engine
    replaces the map of its query layer instead of adding a layer.
    """

    colormap: str = "inferno"
    opacity: float = HEATMAP_OPACITY
    value_range: tuple[float, float] = (0.0, 1.0)
    threshold: float | None = None
    units: str = ""
    legend: str = ""
    query: str = ""


class LayerList(EventedList[Layer]):
    """Ordered layers, bottom first. Emits ``inserted``, ``removed``, ``moved``, ``changed``."""

    def __init__(self, data: list[Layer] | None = None) -> None:
        super().__init__(data or [])

    def unique_name(self, name: str) -> str:
        """``name``, or ``name (2)``, ``name (3)``… so that no two layers share a name."""
        return unique_name(name, {layer.name for layer in self})


def unique_name(name: str, taken: set[str]) -> str:
    """``name`` if it is not in ``taken``, else the first free ``name (2)``, ``name (3)``…"""
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
