"""The common engine API (DESIGN §3). Qt-free: engines know nothing about the app.

An :class:`Engine` describes itself (id, title, paper, accepted inputs, outputs, weights) and runs
``run(volume, query=None, device="cpu", progress=cb, cancelled=fn) -> EngineResult``. ``progress(f, msg)``
takes a fraction in [0, 1]; ``cancelled()`` is polled between steps and, when true, the engine raises
:class:`Cancelled` so that nothing half-made is returned.

``run`` is one template for every engine (:meth:`Engine.run_steps`): check the input → load the weights (once)
→ preprocess (CPU) → forward on the chosen device under the one CUDA-out-of-memory → CPU policy of
:mod:`engines.device` → postprocess into overlays and scores. Engines implement the steps, never the sequence.
Results (:class:`Overlay`, :class:`EngineResult`) live in :mod:`engines.result`, the exceptions in
:mod:`engines.errors`; both are re-exported here.
"""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engines.common.validation import verdict_of
from engines.errors import Cancelled, EngineError
from engines.result import EngineResult, OutputKind, Overlay

if TYPE_CHECKING:  # Volume only in annotations: training on torch-only machines never imports
    from viewer.model.volume import Volume  # viewer.model's package (psygnal)

__all__ = ["Cancelled", "Engine", "EngineError", "EngineResult", "OutputKind", "Overlay", "RunState",
           "ShippedWeightsEngine", "Step", "StudyRun", "finite_or_raise", "weights_root"]

ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


@dataclass
class RunState:
    """What one run carries from step to step (see :meth:`Engine.run_steps`)."""

    volumes: list[Volume]
    query: str | None
    model: Any = None
    inputs: Any = None
    outputs: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def volume(self) -> Volume:
        """The first (for one-scan engines: the only) scan."""
        return self.volumes[0]


class Step:
    """Progress and cancellation inside a step: ``step(f, msg)`` reports ``f`` ∈ [0, 1] of the step mapped into
    the run's ``[start, end]`` range, after raising :class:`Cancelled` when the user cancelled."""

    def __init__(self, progress: ProgressFn, cancelled: CancelledFn, start: float, end: float) -> None:
        self.progress, self.cancelled, self.start, self.end = progress, cancelled, start, end

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.cancelled():
            raise Cancelled()
        self.progress(self.start + (self.end - self.start) * min(1.0, max(0.0, fraction)), message)


def _no_progress(fraction: float, message: str = "") -> None:
    return None


def _never() -> bool:
    return False


class Engine(ABC):
    """Base class of every engine. Subclasses set the class attributes and implement the steps of the
    :meth:`run_steps` template (:meth:`load`, :meth:`preprocess`, :meth:`forward`, :meth:`postprocess`; and
    :meth:`check_input` when they check more than modality, dimensionality and emptiness)."""

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

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Run on ``volume``; see the module docstring for the progress/cancel contract and :meth:`run_steps`."""
        return self.run_steps([volume], query, device, progress, cancelled)

    def run_study(self, volumes: Sequence[Volume], query: str | None = None, device: str = "cpu",
                  progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Several scans of one study (e.g. FLAIR + T1c). Engines that read only one scan use the first."""
        if not self.multi_scan:
            return self.run(volumes[0], query, device, progress, cancelled)
        return self.run_steps(list(volumes), query, device, progress, cancelled)

    # ---- the template: check → load → preprocess → forward → postprocess ---------------------------------
    def run_steps(self, volumes: list[Volume], query: str | None, device: str, progress: ProgressFn,
                  cancelled: CancelledFn) -> EngineResult:
        """The one run sequence of every engine; subclasses fill in the steps, not the sequence.

        1. :meth:`check_input` on every scan; 2. :meth:`load` the weights; 3. :meth:`preprocess` (CPU, numpy);
        4. :meth:`forward` on the chosen device under the one out-of-memory policy
        (:func:`engines.device.run_with_oom_fallback`: CUDA out of memory → the same step again on the CPU, with a
        note; CPU out of memory → a plain :class:`EngineError`); 5. :meth:`postprocess` into an
        :class:`EngineResult`. ``cancelled()`` is polled between the steps (and inside them, through
        :class:`Step`); the model goes back to the CPU after the forward step whatever happens.
        """
        if not volumes:
            raise EngineError(f"{self.title} needs at least one image.")
        progress(0.0, "checking the input")
        for v in volumes:
            self.check_input(v)
        self.check_cancelled(cancelled)
        progress(0.05, "loading weights")
        state = RunState(volumes=list(volumes), query=query.strip() if query and query.strip() else None,
                         model=self.load())
        self.check_cancelled(cancelled)
        progress(0.1, "preparing the input")
        state.inputs = self.preprocess(state)
        self.check_cancelled(cancelled)
        from engines.device import pick_device, run_with_oom_fallback

        step = Step(progress, cancelled, 0.2, 0.9)

        def attempt(dev: Any) -> Any:
            try:
                return self.forward(state, dev, step)
            finally:
                to_cpu = getattr(state.model, "to", None)
                if to_cpu is not None:
                    to_cpu("cpu")

        state.outputs = run_with_oom_fallback(attempt, pick_device(device, state.notes.append), state.notes.append)
        self.check_cancelled(cancelled)
        progress(0.9, "building the results")
        result = self.postprocess(state)
        result.notes[:0] = state.notes
        result.notes.extend(self.evaluation_notes())
        progress(1.0, "done")
        return result

    def load(self) -> Any:
        """The model (loaded once); engines without weights return None."""
        return None

    def evaluation_notes(self) -> list[str]:
        """Lines about how these weights did in extra held-out checks, appended to every result's notes (none)."""
        return []

    def preprocess(self, state: RunState) -> Any:
        """The network input(s) of ``state.volumes`` (after :meth:`check_input`); CPU work only."""
        raise NotImplementedError(f"{type(self).__name__} implements neither run() nor preprocess()")

    def forward(self, state: RunState, device: Any, step: Step) -> Any:
        """Run ``state.model`` on ``state.inputs`` on ``device`` (a torch.device); return CPU results.

        May run twice (CUDA out of memory, then the CPU): keep nothing half-made between calls.
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither run() nor forward()")

    def postprocess(self, state: RunState) -> EngineResult:
        """Overlays (on their own grids, with their affines) and scores from ``state.outputs``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither run() nor postprocess()")

    def validation(self) -> tuple[bool, str]:
        """``(validated, one line)``: whether this engine beats its baseline on held-out data (no card: no)."""
        return False, "no model card - not validated"

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

    def uses_shipped_weights(self) -> bool:
        """Whether this instance runs the shipped weights file (the one its card and evaluation files describe)."""
        weights = getattr(self, "weights", None)
        return weights is None or Path(weights).resolve() == Path(self.default_weights()).resolve()

    def evaluation_notes(self) -> list[str]:
        """The side check stored beside the shipped weights (:func:`engines.common.laterality.summary`; the CXR
        engines have one), for the Results dock; none for other weights files."""
        if not self.uses_shipped_weights():
            return []
        from engines.common import laterality

        line = laterality.summary(self.weights_dir())
        return [line] if line else []

    def validation(self) -> tuple[bool, str]:
        """``(validated, one line)``: whether these weights beat the engine's baseline on held-out data.

        Only the shipped weights have a card that says so (``card.json["validation"]``, written by the engine's
        evaluate command); any other weights file is not validated.
        """
        if not self.uses_shipped_weights():
            return False, f"user-supplied weights ({Path(self.weights).name}): not validated by Lucent"
        try:
            card = self.card()
        except (OSError, UnicodeDecodeError, ValueError):  # a damaged card.json validates nothing
            return False, "the model card cannot be read - not validated"
        return verdict_of(card)

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
            expected = self.card().get("sha256") if self.uses_shipped_weights() else None
            try:
                self._model = self.load_weights(path, expected)
            except EngineError:
                raise
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineError(f"Cannot load {path}: {exc}") from exc
            return self._model
