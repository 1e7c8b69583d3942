"""The common engine API (DESIGN §3). Qt-free: engines know nothing about the app.

An :class:`Engine` describes itself (id, title, paper, accepted inputs, outputs, weights) and runs
``run(volume, query=None, device="cpu", progress=cb, cancelled=fn) -> EngineResult``. ``progress(f, msg)``
takes a fraction in [0, 1]; ``cancelled()`` is polled between steps and, when true, the engine raises
:class:`Cancelled` so that nothing half-made is returned.
"""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

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
    multi_scan: ClassVar[bool] = False  # True: run_study() reads several scans of one study together
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

    def run_study(self, volumes: list[Volume], query: str | None = None, device: str = "cpu",
                  progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Several scans of one study (e.g. FLAIR + T1c). Engines that read only one scan use the first."""
        return self.run(volumes[0], query, device, progress, cancelled)

    @staticmethod
    def check_cancelled(cancelled: CancelledFn) -> None:
        """Raise :class:`Cancelled` if the user cancelled. Call between steps."""
        if cancelled():
            raise Cancelled()


def finite_or_raise(array: np.ndarray, what: str = "input image") -> None:
    """Raise :class:`EngineError` when ``array`` holds NaN or Inf."""
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise EngineError(f"The {what} contains NaN or infinite values.")


WEIGHTS_ROOT = Path(__file__).resolve().parents[1] / "resources" / "weights"  # the shipped weights


def weights_root() -> Path:
    """Folder holding ``<engine_id>/card.json`` and weights: ``LUCENT_WEIGHTS_DIR`` or :data:`WEIGHTS_ROOT`."""
    env = os.environ.get("LUCENT_WEIGHTS_DIR")
    return Path(env) if env else WEIGHTS_ROOT


class StudyRun:
    """An engine bound to the scans of one study: ``run(volume, …)`` runs ``engine.run_study(volumes, …)``.

    Lets a job runner that hands engines one volume run a multi-scan engine on a whole study; every other
    attribute (id, title, …) is the engine's own.
    """

    def __init__(self, engine: Engine, volumes: list[Volume]) -> None:
        self.engine, self.volumes = engine, list(volumes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        return self.engine.run_study(self.volumes, query, device, progress, cancelled)


class ShippedWeightsEngine(Engine):
    """An engine whose demo weights ship in ``resources/weights/<id>/`` beside a model card.

    A user-supplied ``.safetensors`` file replaces them (``weights=``); only the shipped file is checked
    against the card's SHA-256. Subclasses implement :meth:`load_weights`; :meth:`load` does the rest once,
    thread-safely (engines run in a worker thread), turning any failure into an :class:`EngineError` that
    names the file.
    """

    weights_file: ClassVar[str] = "model.safetensors"

    def __init__(self, weights: str | Path | None = None) -> None:
        self.weights = Path(weights) if weights is not None else self.default_weights()
        self._model: Any = None
        self._lock = threading.RLock()

    @classmethod
    def weights_dir(cls) -> Path:
        return weights_root() / cls.id

    @classmethod
    def default_weights(cls) -> Path:
        return cls.weights_dir() / cls.weights_file

    @classmethod
    def card(cls) -> dict[str, Any]:
        """The shipped model card (``card.json``), or {} when absent."""
        p = cls.weights_dir() / "card.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    @classmethod
    def card_text(cls) -> str:
        """The human-readable model card (``card.md``)."""
        p = cls.weights_dir() / "card.md"
        return p.read_text(encoding="utf-8") if p.exists() else "No model card shipped."

    @abstractmethod
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        """Build the model and load ``path`` into it strictly (checking ``expected_sha256`` when given)."""

    def load(self) -> Any:
        """Load (once) and return the model; :class:`EngineError` on a missing, wrong or damaged file."""
        with self._lock:
            if self._model is not None:
                return self._model
            path = self.weights
            if path.suffix != ".safetensors":
                raise EngineError(f"{path.name}: only .safetensors weights are accepted (pickled checkpoints are "
                                  "refused; convert one with `lucent convert-weights IN.pt OUT.safetensors`).")
            if not path.exists():
                raise EngineError(f"Weights file not found: {path}")
            shipped = path.resolve() == self.default_weights().resolve()
            expected = self.card().get("sha256") if shipped else None
            try:
                self._model = self.load_weights(path, expected)
            except EngineError:
                raise
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineError(f"Cannot load {path}: {exc}") from exc
            return self._model
