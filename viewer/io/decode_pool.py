"""Parallel frame decoding: threads for plain reads, worker processes for GIL-bound codecs.

pylibjpeg's libjpeg/RLE decoders (and OpenJPEG, when imagecodecs cannot take a JPEG 2000 file) hold Python's
GIL, so threads do not speed them up. For large compressed series, frames are decoded by a few persistent
worker processes (``_decode_worker.py`` run as a plain script: it imports only numpy and pydicom, never the
app, and is safe to start from a GUI thread) and copied into the preallocated output array here. Set
``LUCENT_DECODE_PROCESSES=0`` to turn them off; :func:`prestart` starts them early to hide their ~0.3 s start.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ._decode_worker import read_message, write_message
from .dicom_header import DicomHeader
from .dicom_pixels import _decode_error, frame_decode_options

# Starting the workers costs ~0.35 s; below this size serial decoding in-process is faster (20 JPEG-LS or RLE
# 512² slices decode in well under that), so small series never pay the start-up. JPEG 2000 never comes here:
# imagecodecs decodes it on threads (see dicom_j2k).
MIN_FRAMES_FOR_PROCESSES = 48
MIN_BYTES_FOR_PROCESSES = 8_000_000
MIN_FRAMES_WHEN_RUNNING = 8  # workers already started: only the IPC is left to pay for
_WORKER_SCRIPT = Path(__file__).with_name("_decode_worker.py")


class WorkerFailed(RuntimeError):
    """A worker process died or answered garbage; the caller falls back to decoding in-process."""


def n_workers() -> int:
    """Worker count: the usable CPU cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def thread_map(fn: Callable, items: Sequence) -> list:
    """``[fn(x) for x in items]`` on a short-lived thread pool (re-raises the first error)."""
    if len(items) <= 1 or n_workers() == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n_workers()) as ex:
        return list(ex.map(fn, items))


def use_processes(n_frames: int, total_bytes: int) -> bool:
    """Whether a decode job is big enough to be worth worker processes (smaller jobs qualify once the
    workers are already running from an earlier large series)."""
    if os.environ.get("LUCENT_DECODE_PROCESSES", "1") == "0" or n_workers() < 2:
        return False
    if _idle is not None:
        return n_frames >= MIN_FRAMES_WHEN_RUNNING
    return n_frames >= MIN_FRAMES_FOR_PROCESSES and total_bytes >= MIN_BYTES_FOR_PROCESSES


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(_WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(_WORKER_SCRIPT.parent),
        )

    def run(self, tasks: list) -> object:
        """Send ``tasks``; returns the decoded arrays or ``("error", type, message, path)``."""
        try:
            write_message(self.proc.stdin, json.dumps(tasks).encode())
            self.proc.stdin.flush()
            header_bytes = read_message(self.proc.stdout)
            if header_bytes is None:
                raise EOFError("the decode worker exited")
            header = json.loads(header_bytes)
            if "error" in header:
                return ("error", *header["error"])
            data = read_message(self.proc.stdout)
            if data is None:
                raise EOFError("the decode worker exited")
        except (OSError, EOFError, ValueError) as exc:
            raise WorkerFailed(str(exc)) from None
        arrays, pos = [], 0
        for dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            n = dt.itemsize * int(np.prod(shape))
            arrays.append(np.frombuffer(data, dtype=dt, count=int(np.prod(shape)), offset=pos).reshape(shape))
            pos += n
        return arrays

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


_lock = threading.Lock()
_idle: queue.SimpleQueue[_Worker] | None = None
_all: list[_Worker] = []


def prestart() -> None:
    """Start the worker processes now (they live until exit or :func:`shutdown_pool`)."""
    global _idle
    with _lock:
        if _idle is None:
            _idle = queue.SimpleQueue()
            for _ in range(n_workers()):
                w = _Worker()
                _all.append(w)
                _idle.put(w)
            atexit.register(shutdown_pool)


def shutdown_pool() -> None:
    """Stop the worker processes (they restart on the next large decode)."""
    global _idle
    with _lock:
        workers, _idle = list(_all), None
        _all.clear()
    for w in workers:
        w.stop()


def _run_on_worker(tasks: list) -> object:
    assert _idle is not None
    w = _idle.get()
    try:
        result = w.run(tasks)
    except WorkerFailed:
        w.stop()
        raise
    _idle.put(w)
    return result


def decode_in_processes(
    jobs: Sequence[tuple[DicomHeader, int]], sink: Callable[[int, np.ndarray], None]
) -> None:
    """Decode ``jobs`` = [(header, frame index)] in worker processes; ``sink(job_no, array)`` stores each.

    Raises LoadError for undecodable frames and WorkerFailed when a worker dies.
    """
    prestart()
    chunk = max(1, min(8, len(jobs) // (n_workers() * 3)))
    batches = [list(range(s, min(len(jobs), s + chunk))) for s in range(0, len(jobs), chunk)]

    def run(batch: list[int]) -> None:
        tasks = []
        for n in batch:
            h, f = jobs[n]
            tasks.append((str(h.path), h.pixel_offset, str(h.transfer_syntax), frame_decode_options(h), f))
        result = _run_on_worker(tasks)
        if isinstance(result, tuple):  # ("error", type, message, path)
            h = next(jobs[n][0] for n in batch if str(jobs[n][0].path) == result[3])
            raise _decode_error(h, _Reported(result[1], result[2]))
        for n, arr in zip(batch, result, strict=True):
            sink(n, arr)

    with ThreadPoolExecutor(max_workers=n_workers()) as ex:
        for _ in ex.map(run, batches):
            pass


class _Reported(Exception):
    """An exception raised in a worker, re-created by name and message for error wording."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name
