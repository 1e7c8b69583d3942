"""Helpers shared by the benchmark scripts: timing, a printed table, and JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def stats(ts: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile (linear interpolation) and mean of the wall times ``ts`` in seconds, and their count."""
    srt = sorted(ts)
    pos = 0.9 * (len(srt) - 1)
    lo = int(pos)
    p90 = srt[lo] + (srt[min(lo + 1, len(srt) - 1)] - srt[lo]) * (pos - lo)
    return {"median_s": statistics.median(srt), "p90_s": p90, "mean_s": statistics.fmean(srt), "repeats": len(srt)}


def once(seconds: float) -> dict[str, float]:
    """A :func:`stats` row for something timed once (no 90th percentile)."""
    return {"median_s": seconds, "p90_s": float("nan"), "mean_s": seconds, "repeats": 1}


def latency(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """:func:`stats` of ``repeats`` timed calls of ``fn`` after one untimed warm-up call."""
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return stats(ts)


def gpu_throughput(call: Callable[[], object], batch: int, unit: str, runs: int = 20) -> dict | None:
    """``{"device", "batch", "<unit>_per_s"}`` for ``call()`` processing ``batch`` items on CUDA (synchronised),
    or None without a GPU. ``call`` holds its own model and inputs on the GPU."""
    import torch

    if not torch.cuda.is_available():
        return None

    def step() -> None:
        call()
        torch.cuda.synchronize()

    t = latency(step, runs)
    return {"device": torch.cuda.get_device_name(), "batch": batch, f"{unit}_per_s": batch / t["median_s"]}


def engine_run_info(engine: str, threads: int) -> dict:
    """The machine facts every engine benchmark records (engine id, CPU threads, CPU, torch version)."""
    import torch

    return {"engine": engine, "threads": threads, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__}


def print_latency(title: str, rows: dict[str, dict[str, float]], unit: str = "s") -> None:
    """Print ``rows`` (name → :func:`stats`) as "median / p90" columns in seconds or milliseconds."""
    scale, digits = (1e3, 2) if unit == "ms" else (1.0, 4)
    width = max(32, *(len(k) for k in rows))
    print(title)
    print(f"{'what':{width}s} {'median ' + unit:>10s} {'p90 ' + unit:>9s}")
    for k, v in rows.items():
        print(f"{k:{width}s} {v['median_s'] * scale:10.{digits}f} {v['p90_s'] * scale:9.{digits}f}")


def write_json(path: Path, result: dict) -> None:
    """Write ``result`` to ``path`` (folders created) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


def report(name: str, rows: list[dict], columns: list[str]) -> Path:
    """Print ``rows`` as a table and write them to ``bench/results/<name>.json``."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(),
                               "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)
