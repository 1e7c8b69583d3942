"""How an AI overlay is presented at first: the defaults a radiologist can read the film through (Qt-free).

An engine's map arrives with a suggested colour map, a value range and, when the engine has a validated
operating point, a threshold. Shown as-is — every value coloured at high opacity — a map hides the film. The
defaults here keep the film visible: values below the threshold are transparent, the rest are drawn at
:data:`HEATMAP_OPACITY` through a perceptually uniform colour map (lightness rises with the value, so the
map also reads in greyscale and for colour-blind users). The screen (:class:`~viewer.model.layers.HeatmapLayer`
defaults), screenshots and ``lucent infer`` all start from :func:`map_presentation`; the user can change each
field afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

PERCEPTUAL = ("inferno", "viridis")  # perceptually uniform maps; "jet" and "hot" stay selectable by hand
HEATMAP_OPACITY = 0.4  # fraction of the map's colour over the film, 0–1
MASK_OPACITY = 0.5
UNVALIDATED_CUT = 0.5  # no operating point from the engine: hide the lower half of the value range


@dataclass(frozen=True)
class MapPresentation:
    """Display settings of one heatmap.

    Attributes:
        colormap: colour-map name (:data:`viewer.model.colormaps.CONTINUOUS`).
        value_range: (low, high) in the map's own units, mapped onto the colour map's ends.
        threshold: values below it are transparent (the map's units).
        opacity: 0–1, alpha of every coloured value.
    """

    colormap: str
    value_range: tuple[float, float]
    threshold: float
    opacity: float = HEATMAP_OPACITY


def perceptual(colormap: str | None) -> str:
    """``colormap`` when it is perceptually uniform, else "inferno"."""
    return colormap if colormap in PERCEPTUAL else "inferno"


def default_threshold(value_range: tuple[float, float], threshold: float | None) -> float:
    """The engine's operating point ``threshold`` when it has one, else :data:`UNVALIDATED_CUT` of the range."""
    if threshold is not None:
        return float(threshold)
    low, high = (float(v) for v in value_range)
    return low + UNVALIDATED_CUT * (high - low)


def map_presentation(colormap: str | None, value_range: tuple[float, float],
                     threshold: float | None) -> MapPresentation:
    """First presentation of an engine's map from what the engine suggested (colour map, range, threshold)."""
    low, high = (float(v) for v in value_range)
    return MapPresentation(perceptual(colormap), (low, high), default_threshold((low, high), threshold))


def shared_value_range(layers: list) -> tuple[float, float] | None:
    """One (low, high) spanning the heatmaps among ``layers`` when there are two or more and their units agree
    (compare panes then share one legend scale); None otherwise."""
    maps = [la for la in layers if la.kind == "heatmap"]
    if len(maps) < 2 or len({la.units for la in maps}) != 1:
        return None
    return min(float(la.value_range[0]) for la in maps), max(float(la.value_range[1]) for la in maps)
