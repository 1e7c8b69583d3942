"""The corrupt-input corpus: ≥ 300 inputs derived from the real data, each through find_series + load + one
extract per plane in a child process with a 10 s limit per input and a peak-memory watch.

Prints the table (inputs, clean messages, loaded with warning, crashes, hangs, worst time, worst memory).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from .corpus import build_corpus
from .runner import run_items, summarise, table

TIME_LIMIT_S = 10.0
MEMORY_LIMIT_MB = 1024  # peak RSS growth allowed for one input (the biggest real one needs ~55 MB)
REQUIRED = {"truncated_dicom", "deleted_tag", "wrong_value", "spacing", "slices", "mixed", "gantry_tilt",
            "damaged_stream", "huge_dims", "nifti", "junk", "image", "folder", "unreadable"}


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    items = build_corpus(shared_data, root / "in", seed=0)
    results = run_items(items, root / "in", root, time_limit_s=TIME_LIMIT_S)
    return root, items, results


def _show(results: list[dict], outcome: str) -> str:
    return "\n".join(f"{r['name']}: {r['msg']}" for r in results if r["outcome"] == outcome)


def test_corpus_no_crash_no_hang(corpus, capsys):
    root, items, results = corpus
    summary = summarise(results)
    with capsys.disabled():
        print("\n" + table(summary))
    assert len(items) >= 300
    assert set(summary["categories"]) >= REQUIRED
    assert summary["crashes"] == 0, _show(results, "crash")
    assert summary["hangs"] == 0, _show(results, "hang")
    assert summary["worst_peak_mb"] < MEMORY_LIMIT_MB, summary


def test_corpus_outcomes_match_expectations(corpus):
    """Inputs marked "error" never load; "flag" ones (NaN voxels, gaps, tilt…) never load silently; the
    unmodified real files ("load") do load."""
    _, _, results = corpus
    wrong = [f"{r['name']} ({r['expect']}): {r['outcome']}" for r in results
             if (r["expect"] == "error" and r["outcome"] in ("loaded", "warned"))
             or (r["expect"] == "flag" and r["outcome"] == "loaded")
             or (r["expect"] == "load" and r["outcome"] not in ("loaded", "warned"))]
    assert not wrong, "\n".join(wrong)


def test_corpus_messages_are_one_line_and_name_the_input(corpus):
    root, _, results = corpus
    for r in results:
        if r["outcome"] != "clean":
            continue
        msg = r["msg"]
        assert msg and "\n" not in msg and "Traceback" not in msg, r
        assert Path(r["path"]).name in msg or str(root) in msg, r


def test_corpus_is_deterministic(corpus, shared_data, tmp_path):
    """The same seed writes the same inputs, byte for byte."""
    root, items, _ = corpus
    again = build_corpus(shared_data, tmp_path / "in", seed=0)
    assert [i.to_dict() for i in again] == [i.to_dict() for i in items]

    def digest(base: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.is_symlink():
                h.update(str(p.relative_to(base)).encode() + hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()

    assert digest(tmp_path / "in") == digest(root / "in")

