"""Annotations a radiologist draws on a slice: ruler, ellipse ROI, arrow and text.

Points are stored in patient LPS millimetres together with the plane they were drawn in, so they stay put
when the layout or zoom changes and can be saved in a workspace. A view shows an annotation when it shows
the same plane and the annotation's points lie on the displayed slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from psygnal.containers import EventedList

from viewer.model.geometry import SliceMapping
from viewer.model.volume import Volume

AnnotationKind = Literal["ruler", "ellipse", "arrow", "text"]
KINDS: tuple[AnnotationKind, ...] = ("ruler", "ellipse", "arrow", "text")


@dataclass(eq=False)
class Annotation:
    """One drawn annotation.

    Attributes:
        kind: "ruler" (2 points), "ellipse" (2 opposite corners of its bounding box), "arrow" (tail, head)
            or "text" (1 point).
        plane: the view plane it was drawn in ("axial", "coronal", "sagittal", "native").
        points: ``(n, 3)`` patient LPS mm.
        text: the label of a text/arrow annotation.
    """

    kind: AnnotationKind
    plane: str
    points: np.ndarray
    text: str = ""
    id: int = field(default_factory=lambda: Annotation._next_id())

    _counter = 0

    @staticmethod
    def _next_id() -> int:
        Annotation._counter += 1
        return Annotation._counter

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown annotation kind {self.kind!r}")
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 3)
        need = 1 if self.kind == "text" else 2
        if len(self.points) != need:
            raise ValueError(f"a {self.kind} needs {need} point(s)")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "plane": self.plane, "points": self.points.tolist(), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict) -> Annotation:
        return cls(kind=d["kind"], plane=d["plane"], points=np.asarray(d["points"]), text=d.get("text", ""))


class AnnotationList(EventedList[Annotation]):
    """The Document's annotations, in drawing order."""


def ruler_length_mm(a: Annotation) -> float:
    """Distance between the ruler's two points, in mm."""
    return float(np.linalg.norm(a.points[1] - a.points[0]))


def on_slice(a: Annotation, volume: Volume, mapping: SliceMapping, slice_index: int) -> bool:
    """Whether ``a`` belongs on ``slice_index`` of ``mapping`` (same plane, points within half a slice)."""
    if a.plane != mapping.plane:
        return False
    for p in a.points:
        s, _, _ = mapping.index_to_screen(volume.patient_to_index(p))
        if abs(s - slice_index) > 0.5:
            return False
    return True


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the base image inside an ellipse ROI: pixel count, mean, std (image units), area mm²."""

    n: int
    mean: float
    std: float
    area_mm2: float
    minimum: float
    maximum: float


def ellipse_pixels(a: Annotation, volume: Volume, mapping: SliceMapping
                   ) -> tuple[int, tuple[slice, slice], np.ndarray]:
    """Where ellipse ``a`` lies on the screen grid of ``volume``'s view ``mapping``.

    Returns (slice index, (row slice, column slice) of its bounding box, boolean mask of the pixels whose
    centres are inside, over that box). A pixel centre on the rim counts as inside.
    """
    screen = [mapping.index_to_screen(volume.patient_to_index(p)) for p in a.points]
    s = int(round(screen[0][0]))
    (c0, r0), (c1, r1) = (screen[0][1], screen[0][2]), (screen[1][1], screen[1][2])
    cc, rr = (c0 + c1) / 2, (r0 + r1) / 2
    ac, ar = max(abs(c1 - c0) / 2, 0.5), max(abs(r1 - r0) / 2, 0.5)
    rows, cols = mapping.screen_shape
    r_lo, r_hi = max(0, int(np.floor(rr - ar))), min(rows, int(np.ceil(rr + ar)) + 1)
    c_lo, c_hi = max(0, int(np.floor(cc - ac))), min(cols, int(np.ceil(cc + ac)) + 1)
    r_idx, c_idx = np.mgrid[r_lo:r_hi, c_lo:c_hi]
    inside = ((c_idx - cc) / ac) ** 2 + ((r_idx - rr) / ar) ** 2 <= 1.0 + 1e-9
    return s, (slice(r_lo, r_hi), slice(c_lo, c_hi)), inside


def roi_stats(image: np.ndarray, box: tuple[slice, slice], inside: np.ndarray,
              pixel_area: float) -> RoiStats:
    """Statistics of a 2D screen-ordered ``image`` under an ROI (see :func:`ellipse_pixels`); NaN ignored.

    Colour images use their mean over channels.
    """
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    values = np.asarray(image[box], dtype=np.float64)[inside]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return RoiStats(0, float("nan"), float("nan"), 0.0, float("nan"), float("nan"))
    return RoiStats(int(values.size), float(values.mean()), float(values.std()), float(values.size * pixel_area),
                    float(values.min()), float(values.max()))


def ellipse_stats(a: Annotation, volume: Volume, mapping: SliceMapping) -> RoiStats:
    """Statistics of ``volume`` inside the ellipse inscribed in ``a``'s bounding box, on its slice.

    The area is the pixel count × pixel area (mm² when the spacing is known, else pixels²).
    """
    s, box, inside = ellipse_pixels(a, volume, mapping)
    pw, ph = mapping.pixel_size
    return roi_stats(mapping.extract(volume.data3d, s), box, inside, pw * ph)
