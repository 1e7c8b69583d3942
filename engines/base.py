"""The common engine API (DESIGN §3). Qt-free: engines know nothing about the app.

An :class:`Engine` describes itself (id, title, paper, accepted inputs, outputs, weights) and runs
``run(volume, query=None, device="cpu", progress=cb, cancelled=fn) -> EngineResult``. ``progress(f, msg)``
takes a fraction in [0, 1]; ``cancelled()`` is polled between steps and, when true, the engine raises
:class:`Cancelled` so that nothing half-made is returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from viewer.model.volume import Volume

OutputKind = Literal["saliency", "mask", "similarity", "scores"]
ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


class EngineError(RuntimeError):
    """A problem the user can understand and act on (wrong modality, bad weights…). Plain words."""


class Cancelled(Exception):
    """Raised inside ``run`` when ``cancelled()`` became true; the job adds nothing."""


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


@dataclass
class EngineResult:
    """What a run produced: overlays plus class scores (name → probability in [0, 1])."""

    overlays: list[Overlay] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _no_progress(fraction: float, message: str = "") -> None:
    return None


def _never() -> bool:
    return False


class Engine(ABC):
    """Base class of every engine. Subclasses set the class attributes and implement :meth:`run`."""

    id: ClassVar[str]
    title: ClassVar[str]
    paper: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]]  # DICOM modality codes accepted, e.g. ("CR", "DX", "OT")
    dims: ClassVar[tuple[int, ...]]  # 2 and/or 3
    takes_query: ClassVar[bool] = False
    outputs: ClassVar[tuple[OutputKind, ...]] = ()

    def applies_to(self, volume: Volume) -> bool:
        """Whether this engine accepts ``volume`` (modality and dimensionality)."""
        dim = 2 if volume.is_2d else 3
        return dim in self.dims and (volume.modality in self.modalities or "*" in self.modalities)

    def check_input(self, volume: Volume) -> None:
        """Raise :class:`EngineError` with a plain message when ``volume`` is not for this engine."""
        dim = 2 if volume.is_2d else 3
        if dim not in self.dims:
            raise EngineError(f"{self.title} takes {' or '.join(f'{d}D' for d in self.dims)} images; "
                              f"this one is {dim}D.")
        if volume.modality not in self.modalities and "*" not in self.modalities:
            raise EngineError(f"{self.title} takes {', '.join(self.modalities)} images; "
                              f"this one is {volume.modality}.")
        if volume.array.size == 0:
            raise EngineError("The image is empty.")

    @abstractmethod
    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Run on ``volume``; see the module docstring for the progress/cancel contract."""

    @staticmethod
    def check_cancelled(cancelled: CancelledFn) -> None:
        """Raise :class:`Cancelled` if the user cancelled. Call between steps."""
        if cancelled():
            raise Cancelled()


def finite_or_raise(array: np.ndarray, what: str = "input image") -> None:
    """Raise :class:`EngineError` when ``array`` holds NaN or Inf."""
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise EngineError(f"The {what} contains NaN or infinite values.")
