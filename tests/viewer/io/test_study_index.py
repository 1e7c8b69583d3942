"""The study index (viewer.io.index): import, incremental re-import, removal, duplicates, corrupt files,
crash safety, concurrent readers, filters, migrations, thumbnails and ``lucent import``."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.bench_index import write_tree
from viewer.io.index import (
    SCHEMA_VERSION,
    IndexDatabaseError,
    StudyFilter,
    StudyIndex,
    format_person_name,
    load_series,
)
from viewer.io.index.schema import migrate
from viewer.io.sniff import sniff
from viewer.io.thumbnails import thumbnail

REPO = Path(__file__).resolve().parents[3]
BIG = int(os.environ.get("LUCENT_BIG_INDEX", "2000"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """600 small DICOM files: 60 studies of 15 patients, 6 corrupt files, 3 duplicate copies."""
    return write_tree(tmp_path_factory.mktemp("tree"), 600)


@pytest.fixture
def small(tmp_path):
    """A private 60-file tree (tests that change files)."""
    return write_tree(tmp_path / "tree", 60, corrupt_every=1000, n_duplicates=0)


def test_index_all_of_shared_data(shared_data, tmp_path):
    kinds: dict[str, int] = {"dicom": 0, "nifti": 0, "image": 0, "other": 0}
    for p in shared_data.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            kinds[sniff(p) or "other"] += 1
    with StudyIndex(tmp_path / "db.sqlite") as index:
        report = index.import_paths([shared_data])
        assert report.indexed == kinds["dicom"] + kinds["nifti"] + kinds["image"]
        assert report.unreadable == kinds["other"] == len(index.unreadable_files())
        assert all(u.reason == "not a DICOM, NIfTI or image file" for u in report.unreadable_files)
        assert report.other_files == kinds["other"] and " 0 unreadable, " in report.summary()  # notes are no fault
        # every NIfTI and 2D image is a one-series study of one file
        one_file = [s for s in index.studies() if s.kind in ("nifti", "image")]
        assert len(one_file) == kinds["nifti"] + kinds["image"]
        assert all(s.n_series == 1 for s in one_file)
        # the 20-slice CT series (anonymised: no UIDs) is one series of 20 files, and it opens from them
        ct = index.studies(StudyFilter(modality="CT"))
        assert len(ct) == 1
        (series,) = index.series(ct[0].uid)
        assert series.n_files == 20
        vol = load_series(index.series_files(series.uid), series.uid)
        assert vol.array.shape == (20, 512, 512)
        # the pydicom-data MR in four transfer syntaxes shares one SOPInstanceUID
        assert any(len(d.paths) == 4 for d in report.duplicates)
        again = index.import_paths([shared_data])
        assert (again.indexed, again.unchanged, again.removed) == (0, report.found, 0)


def test_generated_tree_counts(tree, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        report = index.import_paths([tree.root])
        assert report.indexed == tree.dicom
        assert report.unreadable == len(tree.corrupt)
        assert sorted(u.path for u in report.unreadable_files) == sorted(map(str, tree.corrupt))
        reasons = {u.reason for u in report.unreadable_files}
        assert "not a DICOM, NIfTI or image file" in reasons
        assert any("truncated" in r for r in reasons)
        assert 0 < report.other_files < report.unreadable  # damaged files are told apart from non-images
        counts = index.counts()
        assert (counts["patients"], counts["studies"], counts["series"]) == (tree.patients, tree.studies,
                                                                             tree.series)
        assert counts["unreadable"] == len(tree.corrupt)


def test_duplicate_sop_uids_reported(tree, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        report = index.import_paths([tree.root])
    pairs = {tuple(sorted(map(str, pair))) for pair in tree.duplicates}
    assert {d.paths for d in report.duplicates} == pairs


@pytest.mark.timeout(120)
def test_big_tree(tmp_path):
    """``LUCENT_BIG_INDEX=10000`` runs the full size of issue 12 (default 2,000 files to keep CI fast)."""
    info = write_tree(tmp_path / "tree", BIG)
    seen = []
    with StudyIndex(tmp_path / "db.sqlite") as index:
        t = time.perf_counter()
        report = index.import_paths([info.root], progress=lambda done, total: seen.append((done, total)))
        seconds = time.perf_counter() - t
        assert report.indexed == info.dicom and report.unreadable == len(info.corrupt)
        assert index.counts()["studies"] == info.studies
        assert seen[-1][0] == seen[-1][1] == report.found
        assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
        assert seconds < 30 * BIG / 10_000 + 5
        again = index.import_paths([info.root])
        assert again.unchanged == report.found and again.indexed == 0


def test_reimport_skips_unchanged_and_reads_changed(small, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        first = index.import_paths([small.root])
        assert first.indexed == small.dicom
        again = index.import_paths([small.root])
        assert (again.indexed, again.unchanged) == (0, first.found)
        changed = next(small.root.rglob("IM0001.dcm"))
        st = changed.stat()
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        third = index.import_paths([small.root])
        assert (third.indexed, third.unchanged) == (1, first.found - 1)


def test_deleted_files_are_detected(small, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        index.import_paths([small.root])
        before = index.counts()
        one = next(small.root.rglob("IM0002.dcm"))
        series_dir = next(p for p in small.root.rglob("SE1") if p.is_dir())
        n_series_files = len(list(series_dir.iterdir()))
        one.unlink()
        shutil.rmtree(series_dir)
        report = index.import_paths([small.root])
        assert report.removed == 1 + n_series_files
        after = index.counts()
        assert after["files"] == before["files"] - report.removed
        assert after["series"] == before["series"] - 1
        # detect_removed finds deletions without a walk
        next(small.root.rglob("IM0003.dcm")).unlink()
        assert index.detect_removed() == 1


def test_cancel_keeps_a_consistent_partial_index(tree, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        calls = []

        def progress(done, total):
            calls.append(done)

        report = index.import_paths([tree.root], progress=progress, cancelled=lambda: len(calls) >= 3, chunk=50)
        assert report.cancelled
        assert 0 < report.indexed + report.unreadable < report.found
        again = index.import_paths([tree.root])
        assert again.unchanged == report.indexed + report.unreadable
        assert index.counts()["files"] == tree.dicom


CHILD = textwrap.dedent("""
    import sys, time
    from viewer.io.index import StudyIndex
    def progress(done, total):
        print(done, total, flush=True)
        time.sleep(float(sys.argv[3]))
    with StudyIndex(sys.argv[1]) as index:
        index.import_paths([sys.argv[2]], progress=progress, chunk=32, workers=2)
    print("done", flush=True)
""")


def _start_child(db: Path, root: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(root), str(delay)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_import_leaves_a_usable_database(tree, tmp_path):
    db = tmp_path / "db.sqlite"
    child = _start_child(db, tree.root, 0.05)
    try:
        for _ in range(4):  # the walk's line, then three committed chunks
            assert child.stdout.readline(), child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
    orphans = conn.execute("SELECT count(*) FROM files WHERE error IS NULL AND series NOT IN "
                           "(SELECT id FROM series)").fetchone()[0]
    conn.close()
    assert 0 < n_files < tree.dicom + len(tree.corrupt) and orphans == 0
    with StudyIndex(db) as index:
        report = index.import_paths([tree.root])
        assert report.unchanged == n_files and not report.cancelled
        assert index.counts()["files"] == tree.dicom
        assert index.counts()["studies"] == tree.studies


def test_second_process_reads_while_another_writes(tree, tmp_path):
    db = tmp_path / "db.sqlite"
    StudyIndex(db).close()
    child = _start_child(db, tree.root, 0.03)
    counts = []
    try:
        with StudyIndex(db, timeout=1.0) as reader:
            while child.poll() is None:
                counts.append(len(reader.studies()))
                time.sleep(0.02)
            counts.append(len(reader.studies()))
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0 and "done" in out, err
    assert counts == sorted(counts) and counts[-1] == tree.studies
    assert any(0 < c < tree.studies for c in counts), "the reader never saw the import half way"


def test_filters(tree, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        index.import_paths([tree.root])
        every = index.studies()
        assert len(every) == tree.studies
        assert {s.uid for s in index.studies(StudyFilter(text="müller"))} == {
            s.uid for s in every if s.patient_name == "Müller^Jörg"}
        assert len(index.studies(StudyFilter(text="MÜLLER jörg"))) == len(index.studies(StudyFilter("müller")))
        pid = every[5].patient_id
        assert all(s.patient_id == pid for s in index.studies(StudyFilter(text=pid)))
        brain = index.studies(StudyFilter(text="brain"))
        assert brain and all(s.description == "Brain MRI" for s in brain)
        pet = index.studies(StudyFilter(modality="PT"))
        assert pet and all("PT" in s.modalities for s in pet)
        assert {s.uid for s in index.studies(StudyFilter(text="pt"))} >= {s.uid for s in pet}
        ranged = index.studies(StudyFilter(date_from="2012-01-01", date_to="20141231"))
        assert ranged and all("20120101" <= s.study_date <= "20141231" for s in ranged)
        assert len(ranged) == sum("20120101" <= s.study_date <= "20141231" for s in every)
        assert index.studies(StudyFilter(text="no such patient")) == []
        assert index.studies(StudyFilter(text="50%_")) == []  # LIKE wildcards are literal
        with pytest.raises(ValueError):
            index.studies(StudyFilter(date_from="yesterday"))
        # recently opened first
        last = every[-1].uid
        index.mark_opened(last)
        assert index.studies()[0].uid == last
        t = time.perf_counter()
        index.studies(StudyFilter(text="patient", modality="CT", date_from="2010-01-01"))
        assert time.perf_counter() - t < 0.5


def test_series_files_in_instance_order(tree, tmp_path):
    with StudyIndex(tmp_path / "db.sqlite") as index:
        index.import_paths([tree.root])
        study = index.studies(StudyFilter(text="brain"))[0]
        series = index.series(study.uid)
        assert len(series) == 2 and [s.number for s in series] == [1, 2]
        files = index.series_files(series[0].uid)
        assert files == sorted(files) and len(files) == series[0].n_files
        assert index.study_of_series(series[0].uid) == study.uid


def test_migrations_from_v1_and_newer_version_refused(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO patients (key, name) VALUES ('k', 'Old^Row')")
    conn.close()
    with StudyIndex(db) as index:
        assert index.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert index.conn.execute("SELECT name FROM patients").fetchone()[0] == "Old^Row"
        assert index.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        index.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(IndexDatabaseError, match="newer Lucent"):
        StudyIndex(db)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexDatabaseError):
        StudyIndex(bad)


def test_files_are_never_modified(small, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in small.root.rglob("*") if p.is_file()}
    with StudyIndex(tmp_path / "db.sqlite") as index:
        index.import_paths([small.root])
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in small.root.rglob("*") if p.is_file()}
    assert after == before


def test_default_location_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LUCENT_DATA_DIR", str(tmp_path / "data"))
    with StudyIndex() as index:
        assert index.path == tmp_path / "data" / "studies.sqlite"


def test_thumbnails_cached(shared_data, tmp_path):
    ct = sorted((shared_data / "dicom" / "ct_series").iterdir())
    png = thumbnail(ct, tmp_path)
    from PIL import Image

    with Image.open(png) as im:
        assert max(im.size) == 96 and im.mode == "L"
    stamp = png.stat().st_mtime_ns
    assert thumbnail(ct, tmp_path) == png and png.stat().st_mtime_ns == stamp
    rgb = next((shared_data / "dermoscopy").rglob("*.jpg"))
    with Image.open(thumbnail([rgb], tmp_path)) as im:
        assert im.mode == "RGB"


def test_person_name_format():
    assert format_person_name("Doe^John^A") == "Doe, John A"
    assert format_person_name("Doe") == "Doe"
    assert format_person_name("Yamada^Tarou=山田^太郎") == "Yamada, Tarou"


def test_cli_import(small, tmp_path, capsys):
    from app.browser.cli import main

    db = tmp_path / "cli.sqlite"
    assert main([str(small.root), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"indexed:           {small.dicom}" in out and "skipped unchanged: 0" in out
    assert main([str(small.root), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "indexed:           0" in out and f"skipped unchanged: {small.dicom}" in out
    assert "unreadable:        0" in out and "duplicates:        0" in out
    assert main([str(tmp_path / "missing"), "--db", str(db)]) == 2
