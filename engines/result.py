"""What an engine run gives back (Qt-free, numpy only): overlays on their own grids, class scores and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # Volume only in annotations: training on torch-only machines never imports
    from viewer.model.volume import Volume  # viewer.model's package (psygnal)


OutputKind = Literal["saliency", "mask", "similarity", "scores"]


@dataclass
class Overlay:
    """One output map on its own grid.

    Attributes:
        name: short output name ("saliency · Effusion"); the app prefixes the engine title.
        kind: "saliency", "mask" or "similarity".
        volume: the map with its own affine (voxel (i, j, k) → patient LPS mm), possibly coarser than the input.
        value_range: (low, high) for the colour bar.
        colormap: suggested colour map name ("inferno", "jet", "labels"…).
        legend: colour-bar text, e.g. "Grad-CAM (a.u.)"; units: value units ("probability", "cosine").
        label_names: for masks, value → name.
        visible: whether the layer starts shown (secondary maps may start hidden, e.g. under a mask).
        threshold: values below it are drawn transparent (None: every value is coloured).
    """

    name: str
    kind: OutputKind
    volume: Volume
    value_range: tuple[float, float] = (0.0, 1.0)
    colormap: str = "inferno"
    legend: str = ""
    units: str = ""
    label_names: dict[int, str] = field(default_factory=dict)
    visible: bool = True
    threshold: float | None = None


@dataclass
class EngineResult:
    """What a run produced: overlays plus class scores (name → probability in [0, 1])."""

    overlays: list[Overlay] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
