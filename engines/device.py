"""Compute device choice, CUDA out-of-memory fallback and torch thread count (Qt-free).

* :func:`pick_device` turns the user's setting ("auto", "cpu", "cuda") into a :class:`torch.device`;
  "cuda" on a machine without CUDA falls back to the CPU with a notice instead of failing.
* :func:`run_with_oom_fallback` runs ``fn(device)``; a CUDA out-of-memory error empties the CUDA cache,
  tells the user "GPU out of memory — retrying on CPU" and runs ``fn`` again on the CPU. Out of memory on
  the CPU becomes a plain :class:`~engines.errors.EngineError`. The app never goes down for either.
* :func:`configure_threads` leaves one core to the GUI thread on small machines.

torch is imported here at module level: import this module lazily (inside a job), not at app start-up.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import torch

from engines.errors import EngineError

DevicePreference = Literal["auto", "cpu", "cuda"]
PREFERENCES: tuple[str, ...] = ("auto", "cpu", "cuda")
OOM_NOTICE = "GPU out of memory — retrying on CPU"
CPU_OOM_MESSAGE = "Out of memory on the CPU. Close other programs or use a smaller image."
T = TypeVar("T")

_threads_configured: int | None = None


def _silent(message: str) -> None:
    return None


def cuda_available() -> bool:
    """True when torch sees at least one usable CUDA device."""
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver must not take the app down
        return False


def pick_device(preference: str = "auto", notice: Callable[[str], None] = _silent) -> torch.device:
    """The device to run on.

    Args:
        preference: "auto" (CUDA when available, else CPU), "cpu", "cuda" or an explicit "cuda:N".
        notice: called with a one-line message when "cuda" was asked for but is not available.

    Raises:
        EngineError: for an unknown preference.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "auto":
        return torch.device("cuda") if cuda_available() else torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if cuda_available():
            return torch.device(pref)
        notice("CUDA is not available on this machine — running on the CPU")
        return torch.device("cpu")
    raise EngineError(f"Unknown device {preference!r}; choose one of {', '.join(PREFERENCES)}.")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's CUDA OOM error, or a RuntimeError whose text says "out of memory"."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None) or getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def empty_cuda_cache() -> None:
    """Release cached CUDA blocks (a no-op when CUDA was never initialised)."""
    gc.collect()
    try:
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


def run_with_oom_fallback(fn: Callable[[torch.device], T], device: torch.device | str,
                          notice: Callable[[str], None] = _silent) -> T:
    """Run ``fn(device)``; on CUDA out-of-memory, free the cache, ``notice(OOM_NOTICE)`` and run on the CPU.

    Args:
        fn: the work; takes the device to run on. It must not keep half-made results between calls.
        device: where to try first.
        notice: receives :data:`OOM_NOTICE` before the CPU retry.

    Raises:
        EngineError: when the CPU itself runs out of memory (plain message, what to do).
    """
    device = torch.device(device)
    retry_on_cpu = False
    try:
        return fn(device)
    except MemoryError as exc:
        raise EngineError(CPU_OOM_MESSAGE) from exc
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if device.type != "cuda":
            raise EngineError(CPU_OOM_MESSAGE) from exc
        retry_on_cpu = True
    # here, outside the except block, the traceback (and the GPU tensors its frames hold) is released
    if retry_on_cpu:
        empty_cuda_cache()
        notice(OOM_NOTICE)
    return run_with_oom_fallback(fn, torch.device("cpu"), notice)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(cores: int | None = None, small_machine: int = 8, gui: bool = True) -> int:
    """Set torch's intra-op thread count so the GUI thread keeps a core; returns the count set.

    Args:
        cores: the machine's usable cores (default: :func:`available_cores`); given, it forces a re-run.
        small_machine: up to this many cores torch gets ``max(1, cores - 1)`` threads; above it torch's
            own default is kept (it already leaves room). ``LUCENT_TORCH_THREADS`` overrides both.
        gui: False for headless runs (``lucent infer``): no GUI thread to keep a core for, torch gets them all.

    Idempotent: later calls without ``cores`` return the first result.
    """
    global _threads_configured
    if _threads_configured is not None and cores is None and gui:
        return _threads_configured
    env = os.environ.get("LUCENT_TORCH_THREADS", "").strip()
    n = cores if cores is not None else available_cores()
    if env.isdigit() and int(env) > 0:
        threads = int(env)
    elif not gui:
        threads = n
    elif n <= small_machine:
        threads = max(1, n - 1)
    else:
        threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    _threads_configured = threads
    return threads
