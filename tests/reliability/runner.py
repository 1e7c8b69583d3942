"""Run corpus inputs through the readers in a child process, with a time limit and a memory watch per input.

Parent side: :func:`run_items` starts ``python -m tests.reliability.runner ITEMS.json ROOT START`` and reads one
JSON line per input. A child that dies (segfault, abort) or stops answering (a hang inside C code that the
per-input ``signal.alarm`` cannot interrupt) is killed; its current input is recorded as "crash" or "hang"
and a fresh child continues with the next input. So one child normally runs the whole corpus (imports once).

Child side, per input: ``find_series`` + ``load()`` of every candidate (at most 3) + for each loaded volume
one :class:`~viewer.model.geometry.SliceMapping` extract per plane (axial, coronal, sagittal for 3D; native
for 2D) and ``value_range()``. Outcome:

* ``"clean"``: a :class:`~viewer.io.LoadError` whose message is one non-empty line;
* ``"warned"``: loaded, with ``metadata["warnings"]``;
* ``"loaded"``: loaded without warnings;
* ``"crash"``: any other exception, or a LoadError message with a newline / empty; the child dying;
* ``"hang"``: over the time limit.

Peak memory per input is the process's peak RSS (VmHWM) after resetting it through ``/proc/self/clear_refs``
("5"), minus the RSS before the input; where that is unavailable, ``ru_maxrss`` growth. The child runs under
``RLIMIT_AS`` (default 12 GB) so that a runaway allocation fails instead of swapping the machine.

Unreadable files (we run as root, so chmod does not stop reads): for items with ``deny``, ``open``,
``io.open``, ``os.open`` and ``os.scandir`` are patched so that any path with a component containing ``DENY``
raises ``PermissionError``, as an unreadable file or folder would.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLANES_3D = ("axial", "coronal", "sagittal")


class Timeout(BaseException):
    """Raised by the per-input alarm (a BaseException, so ``except Exception`` in readers cannot eat it)."""


# ---- child ---------------------------------------------------------------------------------------------
def _rss_kb() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) in kB from /proc/self/status; (0, 0) if unavailable."""
    try:
        cur = peak = 0
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    cur = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1])
        return cur, peak
    except OSError:
        return 0, 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Deny:
    """Patch file-opening functions so that paths with a ``DENY`` component raise PermissionError."""

    def __init__(self) -> None:
        self.on = False
        self._open, self._os_open, self._scandir = builtins.open, os.open, os.scandir

    def _check(self, path) -> None:
        if self.on and isinstance(path, str | bytes | os.PathLike):
            p = os.fsdecode(os.fspath(path))
            if any("DENY" in part for part in Path(p).parts):
                raise PermissionError(13, "Permission denied", p)

    def install(self) -> None:
        deny = self

        def _open(file, *a, **k):
            deny._check(file)
            return deny._open(file, *a, **k)

        def _os_open(path, *a, **k):
            deny._check(path)
            return deny._os_open(path, *a, **k)

        def _scandir(path="."):
            deny._check(path)
            return deny._scandir(path)

        builtins.open = io.open = _open
        os.open = _os_open
        os.scandir = _scandir


def _exercise(path: Path) -> tuple[str, str, int]:
    """find_series + load + one extract per plane; returns (outcome, message, n_loaded)."""
    import numpy as np

    from viewer.io import LoadError, find_series
    from viewer.model.geometry import SliceMapping

    try:
        cands = find_series(path)
        warned = False
        loaded = 0
        errors = []
        for c in cands[:3]:
            try:
                vol = c.load()
            except LoadError as exc:
                errors.append(str(exc))
                continue
            loaded += 1
            planes = ("native",) if vol.is_2d else PLANES_3D
            for plane in planes:
                m = SliceMapping.for_volume(vol, plane)
                img = m.extract(vol.data3d, m.n_slices // 2)
                np.asarray(img).sum()
            vol.value_range()
            warned = warned or bool(vol.metadata.get("warnings"))
        if not loaded:
            raise LoadError(errors[0])
        if len(cands) > 1:
            warned = True  # several series: the app shows a picker, as load_volume warns
        return ("warned" if warned else "loaded"), "", loaded
    except LoadError as exc:
        msg = str(exc)
        if not msg.strip() or "\n" in msg or "Traceback" in msg:
            return "crash", f"LoadError message not one line: {msg!r}", 0
        return "clean", msg, 0


def child_main(items_file: str, root: str, start: int, time_limit_s: float) -> None:
    items = json.loads(Path(items_file).read_text())
    deny = _Deny()
    deny.install()
    out = os.fdopen(os.dup(1), "w", buffering=1)  # results; library prints go to stderr
    os.dup2(2, 1)

    def on_alarm(signum, frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    import viewer.io  # noqa: F401  (import cost outside the per-input timing)
    import viewer.model.geometry  # noqa: F401

    can_reset = _reset_peak()
    for n in range(start, len(items)):
        item = items[n]
        out.write(json.dumps({"start": n}) + "\n")
        path = Path(root) / item["path"]
        rss0, _ = _rss_kb()
        ru0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if can_reset:
            _reset_peak()
        deny.on = bool(item.get("deny"))
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, time_limit_s)
        try:
            outcome, msg, _ = _exercise(path)
        except Timeout:
            outcome, msg = "hang", f"over {time_limit_s} s"
        except BaseException as exc:  # noqa: BLE001 - everything else is a crash to report
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            outcome, msg = "crash", f"{type(exc).__name__}: {exc} @ {where}"[:500]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            deny.on = False
        dt = time.perf_counter() - t0
        if dt > time_limit_s and outcome != "hang":
            outcome, msg = "hang", f"took {dt:.1f} s (limit {time_limit_s} s): {msg}"
        _, peak = _rss_kb()
        ru1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = (max(0, peak - rss0) if can_reset and peak else max(0, ru1 - ru0)) / 1024
        out.write(json.dumps({"i": n, "outcome": outcome, "msg": msg, "time_s": round(dt, 4),
                              "peak_mb": round(peak_mb, 1)}) + "\n")
    out.write(json.dumps({"done": True}) + "\n")


# ---- parent --------------------------------------------------------------------------------------------
def _start_child(items_file: Path, root: Path, start: int, time_limit_s: float, mem_limit_gb: float):
    def limits() -> None:
        lim = int(mem_limit_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    env = dict(os.environ, PYTHONPATH=str(REPO), LUCENT_DECODE_PROCESSES="0", PYTHONFAULTHANDLER="1")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.runner", str(items_file), str(root), str(start),
         str(time_limit_s)],
        cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=limits, text=True,
    )


def run_items(items: list, root: Path, work: Path, time_limit_s: float = 10.0, mem_limit_gb: float = 12.0,
              grace_s: float = 10.0) -> list[dict]:
    """Run ``items`` (``Item`` or dicts) under ``root``; returns one result dict per item, in order."""
    dicts = [it if isinstance(it, dict) else it.to_dict() for it in items]
    items_file = work / "items.json"
    items_file.write_text(json.dumps(dicts))
    results: list[dict | None] = [None] * len(dicts)
    start = 0
    while start < len(dicts):
        proc = _start_child(items_file, root, start, time_limit_s, mem_limit_gb)
        assert proc.stdout is not None
        current = None
        started_at = time.monotonic()
        finished = False
        buf = ""
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        while True:
            wait = (time_limit_s + grace_s) if current is not None else 120.0
            ready, _, _ = select.select([fd], [], [], max(0.0, started_at + wait - time.monotonic()))
            if not ready:  # no answer in time: a hang the alarm could not break
                proc.kill()
                proc.wait()
                if current is not None:
                    results[current] = {"i": current, "outcome": "hang", "msg": "child stopped answering",
                                        "time_s": time.monotonic() - started_at, "peak_mb": 0.0}
                    start = current + 1
                else:
                    raise RuntimeError("the corpus runner did not start")
                break
            chunk = os.read(fd, 1 << 16).decode()
            if not chunk:  # child exited
                code = proc.wait()
                if current is not None and results[current] is None:
                    results[current] = {"i": current, "outcome": "crash", "msg": f"child died (exit {code})",
                                        "time_s": time.monotonic() - started_at, "peak_mb": 0.0}
                    start = current + 1
                elif not finished:
                    raise RuntimeError(f"the corpus runner exited with {code} before finishing")
                break
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                msg = json.loads(line)
                if "start" in msg:
                    current, started_at = msg["start"], time.monotonic()
                elif "done" in msg:
                    finished = True
                    start = len(dicts)
                else:
                    results[msg["i"]] = msg
                    current = None
                    started_at = time.monotonic()
        if finished:
            proc.wait()
    out = []
    for d, r in zip(dicts, results, strict=True):
        assert r is not None
        out.append({**d, **r})
    return out


def summarise(results: list[dict]) -> dict:
    """Counts and extremes for the table (and corpus.json)."""
    by = {k: sum(r["outcome"] == k for r in results) for k in ("clean", "warned", "loaded", "crash", "hang")}
    silent = [r for r in results if r["expect"] == "flag" and r["outcome"] == "loaded"]
    should_fail = [r for r in results if r["expect"] == "error" and r["outcome"] in ("loaded", "warned")]
    worst_t = max(results, key=lambda r: r["time_s"])
    worst_m = max(results, key=lambda r: r["peak_mb"])
    return {
        "inputs": len(results), "clean_messages": by["clean"], "loaded_with_warning": by["warned"],
        "loaded": by["loaded"], "crashes": by["crash"], "hangs": by["hang"],
        "silent_loads_of_flagged_inputs": len(silent), "loads_of_inputs_expected_to_fail": len(should_fail),
        "worst_time_s": round(worst_t["time_s"], 3), "worst_time_input": worst_t["name"],
        "worst_peak_mb": round(worst_m["peak_mb"], 1), "worst_peak_input": worst_m["name"],
        "total_time_s": round(sum(r["time_s"] for r in results), 2),
        "categories": sorted({r["category"] for r in results}),
    }


def table(summary: dict) -> str:
    rows = [("inputs tried", summary["inputs"]), ("clean messages", summary["clean_messages"]),
            ("loaded with warning", summary["loaded_with_warning"]), ("loaded (benign)", summary["loaded"]),
            ("crashes", summary["crashes"]), ("hangs", summary["hangs"]),
            ("silent loads of inputs that need a warning", summary["silent_loads_of_flagged_inputs"]),
            ("loads of inputs expected to fail", summary["loads_of_inputs_expected_to_fail"]),
            ("worst time", f"{summary['worst_time_s']:.3f} s ({summary['worst_time_input']})"),
            ("worst peak memory", f"{summary['worst_peak_mb']:.1f} MB ({summary['worst_peak_input']})"),
            ("sum of per-input times", f"{summary['total_time_s']:.1f} s")]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'corrupt-input corpus':<{width}} | result", f"{'-' * width}-|-------"]
    lines += [f"{k:<{width}} | {v}" for k, v in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
