"""Bounded mutation fuzzing of the DICOM and NIfTI readers (hypothesis, in a child process).

CI: 1000 examples per target with a fixed seed (~25 s on 2 cores). Longer runs:
``python bench/bench_corpus.py --fuzz-seconds 600``. A crashing input is kept under ``regressions/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzz import REGRESSIONS, Deadline, check_file, run_fuzz

EXAMPLES_PER_TARGET = 1000
DEADLINE_S = 5.0


def test_fuzz_readers(shared_data, tmp_path, capsys):
    result = run_fuzz(shared_data, tmp_path / "work", EXAMPLES_PER_TARGET, seed=0, deadline_s=DEADLINE_S,
                      save_dir=REGRESSIONS, timeout_s=150)
    assert "died" not in result, f"the fuzz child died: {result}"
    rows = result["done"]
    with capsys.disabled():
        total = sum(r["examples"] for r in rows)
        print(f"\nfuzz: {total} examples in {result['time_s']} s — "
              + ", ".join(f"{r['target']} {r['examples']}" for r in rows))
    failures = [(r["target"], f) for r in rows for f in r["failures"]]
    assert not failures, failures
    assert all(r["examples"] >= EXAMPLES_PER_TARGET for r in rows)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.*")) or [None],
                         ids=lambda p: p.name if isinstance(p, Path) else "none")
def test_regression_inputs(path):
    """Every input that once crashed a reader now loads or gives a clean one-line message."""
    if path is None:
        pytest.skip("no regression inputs kept")
    try:
        check_file(path, DEADLINE_S)
    except Deadline:
        pytest.fail(f"{path.name}: over {DEADLINE_S} s")
