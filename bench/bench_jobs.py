"""Engine job runtime benchmark: per-job overhead, GUI event-loop stall during jobs, cancel latency.

The GUI thread runs a real Qt event loop (offscreen) with a 5 ms precise timer; the "stall" is the longest
gap between two timer ticks while a job runs (the design target is < 100 ms; an idle loop shows ~5 ms).

Rows:
* ``idle``: the timer alone, for reference.
* ``overhead``: jobs of an engine that returns at once; submit → ``finished`` latency in ms.
* ``toy`` / ``cnn``: the test toy engine (3×3 conv, per slice) and a 4-layer CNN engine on ``--slices``
  512×512 slices: job time, GUI stall.
* ``cancel``: cancel → ``cancelled`` latency for a per-slice engine (100 ms per slice).
* ``torch import``: ``JobRunner.warm_up()`` importing torch in a background thread of a fresh process,
  GUI stall while it does (what the first job costs the GUI when torch is not loaded yet).

    .venv/bin/python -m bench.bench_jobs [--slices 32] [--jobs 20] [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.common import report  # noqa: E402

TICK_MS = 5


class StallMeter:
    """Records the gaps (ms) between ticks of a ``TICK_MS`` precise timer on the GUI thread."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        g = sorted(self.gaps[1:]) or [0.0]
        return {"stall_max_ms": g[-1], "stall_p99_ms": g[min(len(g) - 1, int(0.99 * len(g)))],
                "ticks": len(self.gaps)}


def run_loop_until(condition, timeout_s: float = 120.0) -> None:
    """Run the Qt event loop (sleeping between events, as the real app does) until ``condition()``."""
    loop = QEventLoop()
    check = QTimer()
    check.setInterval(2)
    check.timeout.connect(lambda: condition() and loop.quit())
    check.start()
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    check.stop()


def cnn_engine_class():
    """A bench-only engine: a 4-layer CNN (1→16→16→16→1, 3×3) run per 512×512 slice, polling cancel."""
    import torch
    from torch import nn

    from engines.base import Engine, EngineResult, Overlay
    from viewer.model.volume import Volume

    class CNNEngine(Engine):
        id = "bench_cnn"
        title = "Bench CNN"
        paper = "none"
        modalities = ("*",)
        dims = (2, 3)
        outputs = ("saliency",)

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                     nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid()).eval()

        def run(self, volume, query=None, device="cpu", progress=lambda f, m="": None, cancelled=lambda: False):
            data = volume.data3d.astype("float32")
            out = data.copy()
            with torch.inference_mode():
                for k in range(data.shape[0]):
                    self.check_cancelled(cancelled)
                    out[k] = self.net(torch.from_numpy(data[k])[None, None])[0, 0].numpy()
                    progress((k + 1) / data.shape[0], f"slice {k + 1}")
            return EngineResult(overlays=[Overlay("cnn", "saliency", Volume(out, volume.affine))])

    return CNNEngine


def null_engine():
    from engines.base import Engine, EngineResult

    class NullEngine(Engine):
        id = "bench_null"
        title = "Null"
        paper = "none"
        modalities = ("*",)
        dims = (2, 3)

        def run(self, volume, query=None, device="cpu", progress=lambda f, m="": None, cancelled=lambda: False):
            progress(1.0, "done")
            return EngineResult(scores={"x": 1.0})

    return NullEngine()


def timed_job(runner, engine, volume, meter: StallMeter) -> dict[str, float]:
    done: dict[int, float] = {}
    runner.finished.connect(lambda jid, res: done.setdefault(jid, time.perf_counter()))
    meter.start()
    t0 = time.perf_counter()
    job_id = runner.submit(engine, volume)
    run_loop_until(lambda: job_id in done)
    stats = meter.stop()
    runner.finished.disconnect()
    return {"job_s": done[job_id] - t0, **stats}


def cold_import_child() -> None:
    """(Subprocess) GUI stall while JobRunner.warm_up() imports torch in a background thread."""
    app = QApplication.instance() or QApplication([])
    from app.jobs import JobRunner

    assert "torch" not in sys.modules
    runner = JobRunner(device="cpu")
    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    runner.warm_up()
    run_loop_until(lambda: runner._warm is not None and not runner._warm.is_alive())
    stats = meter.stop()
    print(json.dumps({"job_s": time.perf_counter() - t0, **stats}))
    app.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=32, help="512×512 slices per compute job")
    ap.add_argument("--jobs", type=int, default=20, help="jobs for the overhead row")
    ap.add_argument("--small", action="store_true", help="CI size: 8 slices, 8 jobs")
    ap.add_argument("--cold-import-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.cold_import_child:
        cold_import_child()
        return
    if a.small:
        a.slices, a.jobs = 8, 8

    app = QApplication.instance() or QApplication([])  # noqa: F841 - keep the application alive
    import numpy as np

    from app.jobs import JobRunner
    from engines.device import configure_threads
    from tests.engines.toy_engine import ToyEngine
    from viewer.model.volume import Volume

    threads = configure_threads()
    runner = JobRunner(device="cpu")
    meter = StallMeter()
    rows: list[dict] = []
    base = {"threads": threads, "cores": os.cpu_count()}

    meter.start()
    run_loop_until(lambda: False, timeout_s=1.0)
    rows.append({"row": "idle", **base, **meter.stop()})

    small = Volume(np.zeros((1, 8, 8), np.float32))
    engine = null_engine()
    timed_job(runner, engine, small, meter)  # warm
    lat = []
    for _ in range(a.jobs):
        lat.append(timed_job(runner, engine, small, meter)["job_s"] * 1000)
    direct = min(_direct(engine, small) for _ in range(5)) * 1000
    rows.append({"row": "overhead", **base, "n": a.jobs, "job_s": statistics.median(lat) / 1000,
                 "overhead_ms_median": statistics.median(lat) - direct,
                 "overhead_ms_p95": sorted(lat)[int(0.95 * (len(lat) - 1))] - direct})

    vol = Volume(np.random.default_rng(0).random((a.slices, 512, 512), dtype=np.float32), modality="CT")
    for name, eng in (("toy", ToyEngine()), ("cnn", cnn_engine_class()())):
        r = timed_job(runner, eng, vol, meter)
        rows.append({"row": name, **base, "n": a.slices, "slice_ms": r["job_s"] * 1000 / a.slices, **r})

    cancels = []
    got: dict[int, float] = {}
    runner.cancelled.connect(lambda jid: got.setdefault(jid, time.perf_counter()))
    for _ in range(3 if a.small else 5):
        job_id = runner.submit(ToyEngine(delay_s=0.1), Volume(np.zeros((50, 16, 16), np.float32)))
        run_loop_until(lambda job_id=job_id: runner.job(job_id).fraction >= 0.04)
        t0 = time.perf_counter()
        runner.cancel(job_id)
        run_loop_until(lambda job_id=job_id: job_id in got)
        cancels.append((got[job_id] - t0) * 1000)
    rows.append({"row": "cancel", **base, "n": len(cancels), "cancel_ms_median": statistics.median(cancels),
                 "cancel_ms_max": max(cancels)})

    proc = subprocess.run([sys.executable, "-m", "bench.bench_jobs", "--cold-import-child"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        rows.append({"row": "torch import", **base, **json.loads(proc.stdout.strip().splitlines()[-1])})
    else:
        print(proc.stderr, file=sys.stderr)
    runner.shutdown()
    report("jobs", rows, ["row", "n", "job_s", "slice_ms", "overhead_ms_median", "overhead_ms_p95",
                          "stall_max_ms", "stall_p99_ms", "ticks", "cancel_ms_median", "cancel_ms_max",
                          "threads", "cores"])


def _direct(engine, volume) -> float:
    t = time.perf_counter()
    engine.run(volume)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
