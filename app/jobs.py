"""Background engine jobs: a queue, one job at a time per device, each in its own QThread.

Signal API of :class:`JobRunner` (all delivered on the GUI thread; ``job_id`` is an int from
:meth:`JobRunner.submit`)::

    queued(job_id)                      accepted, waiting for its device
    started(job_id)                     the worker thread began
    progress(job_id, fraction, message) fraction in [0, 1]; throttled to ≤ 20 per second per job
    notice(job_id, message)             e.g. "GPU out of memory — retrying on CPU"
    finished(job_id, EngineResult)      the result; turn it into layers with app.results.result_to_layers
    failed(job_id, message, details)    plain one-line message; details = traceback and context
    cancelled(job_id)                   the only signal a cancelled job emits after cancel() (nothing else)

A job ends with exactly one of finished / failed / cancelled. :meth:`JobRunner.cancel` sets a flag that the
engine's ``cancelled()`` callable reads between steps (and the progress callback checks too), so cancel
takes effect at the engine's next step — well under a second for per-slice engines. A job whose cancel was
requested never delivers a result, even if the engine finished anyway. Engine exceptions never escape:
:class:`~engines.base.EngineError` → its message; anything else → "The engine failed: <ExcType>: <msg>"
with the traceback as details. torch is imported in the worker thread, never at app start-up.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from engines.base import Cancelled, Engine, EngineError, EngineResult
from viewer.model.volume import Volume

PROGRESS_INTERVAL_S = 0.05


class JobState(StrEnum):
    """Life cycle of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)


@dataclass(eq=False)
class Job:
    """One engine run. Times are ``time.monotonic()`` seconds; ``elapsed_s`` counts from the start.

    ``volume`` is released once the job ends; the result is delivered by the ``finished`` signal only.
    """

    id: int
    engine: Engine
    volume: Volume | None
    query: str | None
    device_preference: str
    state: JobState = JobState.QUEUED
    fraction: float = 0.0
    message: str = ""
    device: str = ""
    lane: str = ""
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    ended_at: float | None = None
    error: str = ""
    details: str = ""
    notices: list[str] = field(default_factory=list)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def title(self) -> str:
        """"<engine title>" or "<engine title> · <query>"."""
        return f"{self.engine.title} · {self.query}" if self.query else self.engine.title

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started running (0 while queued), frozen when it ends."""
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    @property
    def queued_s(self) -> float:
        """Seconds spent waiting for the device."""
        return (self.started_at or self.ended_at or time.monotonic()) - self.submitted_at

    def is_cancel_requested(self) -> bool:
        """The callable handed to the engine as ``cancelled``."""
        return self.cancel_event.is_set()


class _JobThread(QThread):
    """Runs one job's ``engine.run`` off the GUI thread; reports through queued signals."""

    progressed = Signal(int, float, str)
    noticed = Signal(int, str)
    device_chosen = Signal(int, str)
    succeeded = Signal(int, object)
    errored = Signal(int, str, str)
    stopped = Signal(int)
    ended = Signal(int)

    def __init__(self, job: Job, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self._last_emit = 0.0
        self._device = ""

    def _progress(self, fraction: float, message: str = "") -> None:
        """The engine's progress callback: throttled, and a cancel point."""
        if self.job.cancel_event.is_set():
            raise Cancelled()
        now = time.monotonic()
        f = min(1.0, max(0.0, float(fraction)))
        if f >= 1.0 or now - self._last_emit >= PROGRESS_INTERVAL_S:
            self._last_emit = now
            self.progressed.emit(self.job.id, f, str(message))

    def _notice(self, message: str) -> None:
        self.noticed.emit(self.job.id, message)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.ended.emit(self.job.id)

    def _run(self) -> None:
        job = self.job
        try:
            if "torch" not in sys.modules:
                _preload_torch_libraries()
            from engines.device import configure_threads, pick_device, run_with_oom_fallback

            configure_threads()
            device = pick_device(job.device_preference, self._notice)

            def attempt(dev: object) -> EngineResult:
                if job.cancel_event.is_set():
                    raise Cancelled()
                self._device = str(dev)
                self.device_chosen.emit(job.id, self._device)
                assert job.volume is not None
                return job.engine.run(job.volume, job.query, device=str(dev), progress=self._progress,
                                      cancelled=job.is_cancel_requested)

            result = run_with_oom_fallback(attempt, device, self._notice)
            if job.cancel_event.is_set():
                self.stopped.emit(job.id)
            elif not isinstance(result, EngineResult):
                self.errored.emit(job.id, f"The engine failed: it returned {type(result).__name__}, "
                                  "not an EngineResult.", self._context())
            else:
                self.succeeded.emit(job.id, result)
        except Cancelled:
            self.stopped.emit(job.id)
        except EngineError as exc:
            if job.cancel_event.is_set():
                self.stopped.emit(job.id)
            else:
                self.errored.emit(job.id, str(exc) or type(exc).__name__,
                                  self._context() + traceback.format_exc())
        except BaseException as exc:  # nothing from an engine may take the app down
            if job.cancel_event.is_set():
                self.stopped.emit(job.id)
            else:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self.errored.emit(job.id, f"The engine failed: {type(exc).__name__}: {msg}",
                                  self._context() + traceback.format_exc())

    def _context(self) -> str:
        j = self.job
        shape = "×".join(map(str, j.volume.array.shape)) if j.volume is not None else "?"
        return (f"engine: {j.engine.id} ({j.engine.title})\nquery: {j.query or '—'}\n"
                f"device: {self._device or j.device_preference}\ninput: {shape}"
                f"{' ' + j.volume.modality if j.volume is not None else ''}\n"
                f"elapsed: {j.elapsed_s:.2f} s\n\n")


def _preload_torch_libraries() -> None:
    """dlopen torch's big native libraries without the GIL, so the later ``import torch`` holds it less.

    ``ctypes.CDLL`` releases the GIL around ``dlopen``; loading ``libtorch_cpu`` (hundreds of MB, with its
    static initialisers) that way keeps the GUI thread running during most of the cold torch import.
    Only libraries that do not call into Python are preloaded; any failure is ignored (the import then
    simply does the work itself).
    """
    import ctypes
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return
        lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
        for name in ("libgomp.so.1", "libc10.so", "libtorch_cpu.so", "libtorch.so"):
            if (lib / name).is_file():
                ctypes.CDLL(str(lib / name), mode=ctypes.RTLD_GLOBAL)
    except (OSError, StopIteration, ValueError):
        pass


class JobRunner(QObject):
    """Queue of engine jobs; one running job per device lane ("cpu", "cuda"…). See the module docstring.

    Args:
        device: default device preference for jobs ("auto", "cpu", "cuda"); per job via ``submit``.
        parent: Qt parent.
    """

    queued = Signal(int)
    started = Signal(int)
    progress = Signal(int, float, str)
    notice = Signal(int, str)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)

    def __init__(self, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._order: list[int] = []
        self._threads: dict[int, _JobThread] = {}
        self._busy_lanes: dict[str, int] = {}
        self._warm: threading.Thread | None = None
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ---- public API --------------------------------------------------------------------------------
    def submit(self, engine: Engine, volume: Volume, query: str | None = None,
               device: str | None = None) -> int:
        """Queue ``engine.run(volume, query)``; returns the job id. Emits ``queued`` (then ``started``…)."""
        job = Job(id=next(self._ids), engine=engine, volume=volume, query=(query or None),
                  device_preference=device or self.device)
        self._jobs[job.id] = job
        self._order.append(job.id)
        self.queued.emit(job.id)
        self._pump()
        return job.id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; False when it is unknown or already over.

        A queued job emits ``cancelled`` at once; a running one when its engine reaches its next step.
        """
        job = self._jobs.get(job_id)
        if job is None or job.state.done or job.state == JobState.CANCELLING:
            return False
        job.cancel_event.set()
        if job.state == JobState.QUEUED:
            self._end(job, JobState.CANCELLED)
            self.cancelled.emit(job.id)
        else:
            job.state = JobState.CANCELLING
            job.message = "cancelling…"
        return True

    def cancel_all(self) -> None:
        """Cancel every job that has not ended."""
        for job_id in list(self._order):
            self.cancel(job_id)

    def job(self, job_id: int) -> Job:
        """The job with ``job_id`` (KeyError when unknown)."""
        return self._jobs[job_id]

    def jobs(self) -> list[Job]:
        """All jobs, oldest first (ended ones included)."""
        return [self._jobs[i] for i in self._order]

    def active_jobs(self) -> list[Job]:
        """Queued and running jobs."""
        return [j for j in self.jobs() if not j.state.done]

    def is_idle(self) -> bool:
        """No job queued or running (threads included)."""
        return not self.active_jobs() and not self._threads

    def warm_up(self) -> None:
        """Import torch and set thread counts in a background thread, so the first job starts sooner."""
        if self._warm is None and "torch" not in sys.modules:
            def _load() -> None:
                _preload_torch_libraries()
                from engines.device import configure_threads

                configure_threads()

            self._warm = threading.Thread(target=_load, name="lucent-torch-warm-up", daemon=True)
            self._warm.start()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Process events until no job is active (tests, scripts, shutdown); True when idle."""
        deadline = time.monotonic() + timeout_s
        while not self.is_idle() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        QCoreApplication.processEvents()
        return self.is_idle()

    @Slot()
    def shutdown(self, timeout_s: float = 3.0) -> None:
        """Cancel everything and wait (≤ ``timeout_s`` in all) for the worker threads to stop."""
        self.cancel_all()
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads.values()):
            thread.wait(max(1, int((deadline - time.monotonic()) * 1000)))

    # ---- scheduling --------------------------------------------------------------------------------
    @staticmethod
    def lane_for(preference: str) -> str:
        """The device lane of a preference, without importing torch on the GUI thread.

        Before torch is loaded, "auto"/"cuda" share the "cpu" lane (conservative: one job at a time);
        the worker resolves the real device.
        """
        pref = (preference or "auto").lower()
        if pref == "cpu":
            return "cpu"
        torch = sys.modules.get("torch")
        if torch is None:
            return "cpu"
        try:
            has_cuda = bool(torch.cuda.is_available())
        except Exception:
            has_cuda = False
        if not has_cuda:
            return "cpu"
        return pref if pref.startswith("cuda:") else "cuda"

    def _pump(self) -> None:
        for job_id in self._order:
            job = self._jobs[job_id]
            if job.state != JobState.QUEUED:
                continue
            lane = self.lane_for(job.device_preference)
            if lane in self._busy_lanes:
                continue
            self._start(job, lane)

    def _start(self, job: Job, lane: str) -> None:
        job.state = JobState.RUNNING
        job.lane = lane
        job.started_at = time.monotonic()
        self._busy_lanes[lane] = job.id
        thread = _JobThread(job)
        conn = Qt.ConnectionType.QueuedConnection
        thread.progressed.connect(self._on_progress, conn)
        thread.noticed.connect(self._on_notice, conn)
        thread.device_chosen.connect(self._on_device, conn)
        thread.succeeded.connect(self._on_succeeded, conn)
        thread.errored.connect(self._on_errored, conn)
        thread.stopped.connect(self._on_stopped, conn)
        thread.ended.connect(self._on_thread_ended, conn)
        self._threads[job.id] = thread
        self.started.emit(job.id)
        thread.start()

    def _end(self, job: Job, state: JobState) -> None:
        job.state = state
        job.ended_at = time.monotonic()
        job.volume = None

    # ---- slots (GUI thread) --------------------------------------------------------------------------
    @Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        job = self._jobs[job_id]
        if job.state != JobState.RUNNING:
            return
        job.fraction, job.message = fraction, message
        self.progress.emit(job_id, fraction, message)

    @Slot(int, str)
    def _on_notice(self, job_id: int, message: str) -> None:
        job = self._jobs[job_id]
        job.notices.append(message)
        if job.state == JobState.RUNNING:
            self.notice.emit(job_id, message)

    @Slot(int, str)
    def _on_device(self, job_id: int, device: str) -> None:
        self._jobs[job_id].device = device

    @Slot(int, object)
    def _on_succeeded(self, job_id: int, result: EngineResult) -> None:
        job = self._jobs[job_id]
        if job.state == JobState.CANCELLING:
            self._on_stopped(job_id)
            return
        for n in job.notices:
            if n not in result.notes:
                result.notes.append(n)
        job.fraction, job.message = 1.0, "done"
        self._end(job, JobState.FINISHED)
        self.finished.emit(job_id, result)

    @Slot(int, str, str)
    def _on_errored(self, job_id: int, message: str, details: str) -> None:
        job = self._jobs[job_id]
        if job.state == JobState.CANCELLING:
            self._on_stopped(job_id)
            return
        job.error, job.details = message, details
        self._end(job, JobState.FAILED)
        self.failed.emit(job_id, message, details)

    @Slot(int)
    def _on_stopped(self, job_id: int) -> None:
        job = self._jobs[job_id]
        if job.state.done:
            return
        self._end(job, JobState.CANCELLED)
        self.cancelled.emit(job_id)

    @Slot(int)
    def _on_thread_ended(self, job_id: int) -> None:
        thread = self._threads.pop(job_id, None)
        if thread is not None:
            thread.wait()  # run() has returned; this only waits for the thread's own exit (microseconds)
            thread.deleteLater()
        job = self._jobs[job_id]
        if not job.state.done:  # the worker ended without reporting (should not happen)
            job.error = "The engine stopped without a result."
            self._end(job, JobState.FAILED)
            self.failed.emit(job_id, job.error, "")
        if self._busy_lanes.get(job.lane) == job_id:
            del self._busy_lanes[job.lane]
        self._pump()
