"""Corrupt-input corpus at full size, and longer fuzzing of the DICOM and NIfTI readers (run by hand).

Builds the corpus of :mod:`tests.reliability.corpus` (``--scale 3`` adds more random truncation offsets,
damaged streams and images than the CI run), runs every input through find_series + load + one extract per
plane in a child process (``--time-limit`` per input, peak-memory watch), prints the table and one row per
category, and writes ``bench/results/corpus.json``. With ``--fuzz-seconds N`` it then fuzzes the readers for
N seconds (hypothesis mutations of small real files, new seed each round); crashing inputs are kept under
``tests/reliability/regressions/``.

Usage: ``.venv/bin/python bench/bench_corpus.py [--scale 3] [--seed 0] [--fuzz-seconds 600]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import report  # noqa: E402
from tests.reliability.corpus import build_corpus  # noqa: E402
from tests.reliability.fuzz import REGRESSIONS, run_fuzz  # noqa: E402
from tests.reliability.runner import run_items, summarise, table  # noqa: E402

DATA = Path(os.environ.get("LUCENT_SHARED_DATA", REPO.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=3, help="random variants per source (CI uses 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per input")
    p.add_argument("--fuzz-seconds", type=float, default=0.0)
    p.add_argument("--fuzz-examples", type=int, default=500, help="examples per target per round")
    a = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"real data not found at {DATA} (set LUCENT_SHARED_DATA)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lucent-corpus-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        items = build_corpus(DATA, root / "in", seed=a.seed, scale=a.scale)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = run_items(items, root / "in", root, time_limit_s=a.time_limit)
        run_s = time.perf_counter() - t0
        summary = summarise(results)
        print(table(summary))
        print(f"\nbuilt {len(items)} inputs in {build_s:.1f} s; ran them in {run_s:.1f} s (one child process)\n")
        rows = []
        by_cat: dict[str, list[dict]] = defaultdict(list)
        for r in results:
            by_cat[r["category"]].append(r)
        for cat, rs in sorted(by_cat.items()):
            rows.append({"category": cat, "inputs": len(rs),
                         "clean": sum(r["outcome"] == "clean" for r in rs),
                         "warned": sum(r["outcome"] == "warned" for r in rs),
                         "loaded": sum(r["outcome"] == "loaded" for r in rs),
                         "crash": sum(r["outcome"] == "crash" for r in rs),
                         "hang": sum(r["outcome"] == "hang" for r in rs),
                         "worst_s": max(r["time_s"] for r in rs), "worst_mb": max(r["peak_mb"] for r in rs)})
        rows.append({"category": "ALL", "inputs": summary["inputs"], "clean": summary["clean_messages"],
                     "warned": summary["loaded_with_warning"], "loaded": summary["loaded"],
                     "crash": summary["crashes"], "hang": summary["hangs"], "worst_s": summary["worst_time_s"],
                     "worst_mb": summary["worst_peak_mb"]})
        fuzz = None
        if a.fuzz_seconds > 0:
            fuzz = run_fuzz(DATA, root / "fuzz", a.fuzz_examples, seconds=a.fuzz_seconds, seed=a.seed + 1,
                            save_dir=REGRESSIONS, timeout_s=a.fuzz_seconds + 600)
            if "died" in fuzz:
                print(f"fuzz child died ({fuzz['died']}); inputs kept: {fuzz['kept']}")
            else:
                for t in fuzz["done"]:
                    rows.append({"category": f"fuzz:{t['target']}", "inputs": t["examples"],
                                 "crash": len(t["failures"]), "worst_s": t["time_s"]})
                print(f"fuzz: {sum(t['examples'] for t in fuzz['done'])} examples in {fuzz['time_s']} s, "
                      f"{sum(len(t['failures']) for t in fuzz['done'])} failures\n")
        out = report("corpus", rows, ["category", "inputs", "clean", "warned", "loaded", "crash", "hang",
                                      "worst_s", "worst_mb"])
        data = json.loads(out.read_text())
        data.update(summary=summary, scale=a.scale, seed=a.seed, build_s=round(build_s, 2),
                    run_s=round(run_s, 2), fuzz=fuzz,
                    problems=[r for r in results if r["outcome"] in ("crash", "hang")])
        out.write_text(json.dumps(data, indent=2))
    failed = summary["crashes"] + summary["hangs"]
    if fuzz is not None:
        failed += 1 if "died" in fuzz else sum(len(t["failures"]) for t in fuzz["done"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
