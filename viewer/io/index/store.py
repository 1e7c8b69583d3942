"""StudyIndex: import folders into the SQLite index incrementally, and query it for the browser.

Import (:meth:`StudyIndex.import_paths`):

1. walk the roots (hidden files, the database and its WAL/SHM files are skipped);
2. compare each file's (size, mtime) with the index: unchanged files are skipped, files under the roots that
   the index holds but the walk did not find are removed (one transaction);
3. read the new/changed files' headers in a thread pool, ``chunk`` files at a time, and write each chunk in one
   transaction — a process killed mid-import leaves every committed chunk complete and nothing half-written;
4. drop series/studies/patients left without files, and report duplicate SOPInstanceUIDs.

``progress(done, total)`` is called after the walk and after each chunk (``total`` = files found, ``done``
counts unchanged files too); ``cancelled()`` is checked during the walk, per file and between chunks.

One :class:`StudyIndex` (one SQLite connection) belongs to one thread. Other threads or processes open their
own; WAL mode lets them read while one of them writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .records import (
    DuplicateInstance,
    ImportReport,
    SeriesRow,
    StudyFilter,
    StudyRow,
    UnreadableFile,
    format_person_name,
    normalise_date,
)
from .scan import Entry, FileStat, read_entry, walk
from .schema import connect

DB_NAME = "studies.sqlite"
Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]


def data_dir() -> Path:
    """Lucent's per-user data folder: ``LUCENT_DATA_DIR``, else ``LUCENT_CONFIG_DIR`` (tests set it), else
    platformdirs' user data folder."""
    override = os.environ.get("LUCENT_DATA_DIR") or os.environ.get("LUCENT_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("lucent", appauthor=False))


def default_db_path() -> Path:
    """Where the study index lives unless told otherwise: ``data_dir() / "studies.sqlite"``."""
    return data_dir() / DB_NAME


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    # header parsing is Python-bound: on 2 cores a pool only adds contention (measured 2× slower)
    return 1 if cores <= 2 else min(4, cores)


def _under(root: str) -> tuple[str, str]:
    """(low, high) bounds so that ``low <= path < high`` selects the paths inside folder ``root``."""
    prefix = root.rstrip(os.sep) + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class StudyIndex:
    """The local study library. ``StudyIndex(path)`` opens or creates the database (schema migrated).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.conn = connect(self.path, timeout=timeout)

    def close(self) -> None:
        """Close the connection (a checkpoint folds the WAL into the main file when no one else reads)."""
        self.conn.close()

    def __enter__(self) -> StudyIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- import ---------------------------------------------------------------------------------------
    def import_paths(self, roots: Sequence[str | Path], progress: Progress | None = None,
                     cancelled: Cancelled | None = None, workers: int | None = None,
                     chunk: int = 256) -> ImportReport:
        """Index the files under ``roots`` (folders or files); see the module docstring for the steps."""
        t0 = time.perf_counter()
        cancelled = cancelled or (lambda: False)
        progress = progress or (lambda done, total: None)
        report = ImportReport()
        roots = [os.path.abspath(r) for r in roots]
        own = {str(self.path.resolve()) + s for s in ("", "-wal", "-shm", "-journal")}
        found = list(walk(roots, skip=own.__contains__, cancelled=cancelled))
        if cancelled():
            report.cancelled = True
            report.seconds = time.perf_counter() - t0
            return report
        report.found = len(found)
        known = self._known(roots)
        todo: list[FileStat] = []
        for st in found:
            old = known.pop(st.path, None)
            if old is not None and old == (st.size, st.mtime_ns):
                report.unchanged += 1
            else:
                todo.append(st)
        report.removed = self._delete_paths(list(known))
        self._prune()
        done = report.unchanged
        progress(done, report.found)
        ids = _IdCache()
        n_workers = workers or _workers()

        def read(st: FileStat) -> Entry | None:
            return None if cancelled() else read_entry(st)

        with ThreadPoolExecutor(max_workers=n_workers) if n_workers > 1 else _Serial() as pool:
            for start in range(0, len(todo), chunk):
                if cancelled():
                    report.cancelled = True
                    break
                entries = list(pool.map(read, todo[start:start + chunk]))
                complete = [e for e in entries if e is not None]
                self._write(complete, ids)
                for e in complete:
                    if e.error is None:
                        report.indexed += 1
                    else:
                        report.unreadable += 1
                        report.unreadable_files.append(UnreadableFile(e.stat.path, e.error))
                done += len(complete)
                progress(done, report.found)
                if len(complete) < len(entries):
                    report.cancelled = True
                    break
        self._prune()
        report.duplicates = self.duplicates(under=roots)
        report.seconds = time.perf_counter() - t0
        return report

    def _known(self, roots: list[str]) -> dict[str, tuple[int, int]]:
        known: dict[str, tuple[int, int]] = {}
        for root in roots:
            if os.path.isfile(root):
                rows = self.conn.execute("SELECT path, size, mtime_ns FROM files WHERE path = ?", (root,))
            else:
                rows = self.conn.execute("SELECT path, size, mtime_ns FROM files WHERE path >= ? AND path < ?",
                                         _under(root))
            known.update((p, (s, m)) for p, s, m in rows)
        return known

    def _delete_paths(self, paths: list[str]) -> int:
        if not paths:
            return 0
        with _transaction(self.conn):
            self.conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))
        return len(paths)

    def _prune(self) -> None:
        """Drop series without files, studies without series and patients without studies."""
        with _transaction(self.conn):
            self.conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.series = series.id)")
            self.conn.execute("DELETE FROM studies WHERE NOT EXISTS "
                              "(SELECT 1 FROM series s WHERE s.study = studies.id)")
            self.conn.execute("DELETE FROM patients WHERE NOT EXISTS "
                              "(SELECT 1 FROM studies s WHERE s.patient = patients.id)")

    def _write(self, entries: list[Entry], ids: _IdCache) -> None:
        """Write one chunk in one transaction (patients, studies, series first, then the files)."""
        if not entries:
            return
        try:
            with _transaction(self.conn):
                rows = []
                for e in entries:
                    st = e.stat
                    if e.error is not None:
                        rows.append((st.path, st.size, st.mtime_ns, None, None, None, 1, e.error))
                        continue
                    series_id = self._series_id(e, ids)
                    rows.append((st.path, st.size, st.mtime_ns, series_id, e.sop_uid, e.instance, e.frames, None))
                self.conn.executemany(
                    "INSERT INTO files (path, size, mtime_ns, series, sop_uid, instance, frames, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
                    "mtime_ns = excluded.mtime_ns, series = excluded.series, sop_uid = excluded.sop_uid, "
                    "instance = excluded.instance, frames = excluded.frames, error = excluded.error",
                    rows,
                )
        except BaseException:
            ids.clear()  # ids handed out inside the rolled-back transaction no longer exist
            raise

    def _series_id(self, e: Entry, ids: _IdCache) -> int:
        sid = ids.series.get(e.series_uid)
        if sid is not None:
            return sid
        pid = ids.patients.get(e.patient_key)
        if pid is None:
            pid = self.conn.execute(
                "INSERT INTO patients (key, patient_id, name, birth_date, sex) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET sex = excluded.sex RETURNING id",
                (e.patient_key, e.patient_id, e.patient_name, e.birth_date, e.sex),
            ).fetchone()[0]
            ids.patients[e.patient_key] = pid
        study_id = ids.studies.get(e.study_uid)
        if study_id is None:
            search = " ".join([format_person_name(e.patient_name), e.patient_name.replace("^", " "), e.patient_id,
                               e.study_description, e.accession]).casefold()
            study_id = self.conn.execute(
                "INSERT INTO studies (uid, patient, study_date, study_time, description, accession, kind, search) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(uid) DO UPDATE SET patient = excluded.patient, "
                "study_date = excluded.study_date, study_time = excluded.study_time, "
                "description = excluded.description, accession = excluded.accession, kind = excluded.kind, "
                "search = excluded.search RETURNING id",
                (e.study_uid, pid, e.study_date, e.study_time, e.study_description, e.accession, e.kind, search),
            ).fetchone()[0]
            ids.studies[e.study_uid] = study_id
        sid = self.conn.execute(
            "INSERT INTO series (uid, study, modality, description, number, kind) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(uid) DO UPDATE SET study = excluded.study, modality = excluded.modality, "
            "description = excluded.description, number = excluded.number, kind = excluded.kind RETURNING id",
            (e.series_uid, study_id, e.modality, e.series_description, e.series_number, e.kind),
        ).fetchone()[0]
        ids.series[e.series_uid] = sid
        return sid

    def detect_removed(self, under: Sequence[str | Path] | None = None) -> int:
        """Remove indexed files (under ``under``, else all) that no longer exist; returns how many."""
        paths = self._paths(under)
        gone = [p for p in paths if not os.path.exists(p)]
        n = self._delete_paths(gone)
        if n:
            self._prune()
        return n

    def _paths(self, under: Iterable[str | Path] | None) -> list[str]:
        if under is None:
            return [p for (p,) in self.conn.execute("SELECT path FROM files")]
        out: list[str] = []
        for root in under:
            root = os.path.abspath(root)
            out += [p for (p,) in self.conn.execute("SELECT path FROM files WHERE path = ? OR (path >= ? AND path < ?)",
                                                     (root, *_under(root)))]
        return out

    # ---- queries --------------------------------------------------------------------------------------
    def studies(self, flt: StudyFilter | None = None, limit: int | None = None) -> list[StudyRow]:
        """Studies matching ``flt``: recently opened first, then newest study date, then patient name."""
        flt = flt or StudyFilter()
        where, args = [], []
        for word in flt.text.casefold().split():
            where.append("(st.search LIKE ? ESCAPE '\\' OR EXISTS "
                         "(SELECT 1 FROM series w WHERE w.study = st.id AND w.modality = ?))")
            args += [_like(word), word.upper()]
        if flt.modality:
            where.append("EXISTS (SELECT 1 FROM series m WHERE m.study = st.id AND m.modality = ?)")
            args.append(flt.modality.strip().upper())
        if flt.date_from:
            where.append("st.study_date >= ? AND st.study_date != ''")
            args.append(normalise_date(flt.date_from))
        if flt.date_to:
            where.append("st.study_date <= ? AND st.study_date != ''")
            args.append(normalise_date(flt.date_to))
        sql = ("SELECT st.uid, p.name, p.patient_id, p.birth_date, st.study_date, st.description, st.accession, "
               "(SELECT group_concat(DISTINCT modality) FROM series s WHERE s.study = st.id), "
               "(SELECT count(*) FROM series s WHERE s.study = st.id), st.kind, st.last_opened "
               "FROM studies st JOIN patients p ON p.id = st.patient "
               + ("WHERE " + " AND ".join(where) + " " if where else "")
               + "ORDER BY st.last_opened DESC NULLS LAST, st.study_date DESC, p.name, st.description, st.uid")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [StudyRow(uid, name, pid, birth, date, desc, acc, tuple(sorted((mods or "").split(",")) if mods else ()),
                         n, kind, opened)
                for uid, name, pid, birth, date, desc, acc, mods, n, kind, opened in self.conn.execute(sql, args)]

    def series(self, study_uid: str) -> list[SeriesRow]:
        """The series of one study, by series number then description."""
        rows = self.conn.execute(
            "SELECT s.uid, st.uid, s.modality, s.description, s.number, s.kind, count(f.id), sum(f.frames) "
            "FROM series s JOIN studies st ON st.id = s.study JOIN files f ON f.series = s.id "
            "WHERE st.uid = ? GROUP BY s.id ORDER BY s.number IS NULL, s.number, s.description, s.uid",
            (study_uid,),
        )
        return [SeriesRow(*r) for r in rows]

    def series_files(self, series_uid: str) -> list[str]:
        """Paths of one series' files, in InstanceNumber order (then path)."""
        rows = self.conn.execute(
            "SELECT f.path FROM files f JOIN series s ON s.id = f.series WHERE s.uid = ? "
            "ORDER BY f.instance IS NULL, f.instance, f.path",
            (series_uid,),
        )
        return [p for (p,) in rows]

    def study_of_series(self, series_uid: str) -> str | None:
        """The StudyInstanceUID (or stand-in key) that holds ``series_uid``."""
        row = self.conn.execute("SELECT st.uid FROM series s JOIN studies st ON st.id = s.study WHERE s.uid = ?",
                                (series_uid,)).fetchone()
        return row[0] if row else None

    def modalities(self) -> list[str]:
        """Modality codes present in the index, sorted."""
        return [m for (m,) in self.conn.execute("SELECT DISTINCT modality FROM series ORDER BY modality") if m]

    def unreadable_files(self, under: Sequence[str | Path] | None = None) -> list[UnreadableFile]:
        """Files the imports could not index, with reasons (all, or those under ``under``)."""
        rows = self.conn.execute("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")
        files = [UnreadableFile(p, e) for p, e in rows]
        return files if under is None else [f for f in files if _inside(f.path, under)]

    def duplicates(self, under: Sequence[str | Path] | None = None) -> list[DuplicateInstance]:
        """SOPInstanceUIDs held by several indexed files (those with a file under ``under``, if given)."""
        rows = self.conn.execute(
            "SELECT sop_uid, group_concat(path, char(10)) FROM files WHERE sop_uid IN "
            "(SELECT sop_uid FROM files WHERE sop_uid IS NOT NULL GROUP BY sop_uid HAVING count(*) > 1) "
            "GROUP BY sop_uid ORDER BY sop_uid")
        dups = [DuplicateInstance(uid, tuple(sorted(paths.split("\n")))) for uid, paths in rows]
        if under is None:
            return dups
        return [d for d in dups if any(_inside(p, under) for p in d.paths)]

    def counts(self) -> dict[str, int]:
        """Numbers of patients, studies, series, indexed files and unreadable files."""
        q = self.conn.execute
        return {
            "patients": q("SELECT count(*) FROM patients").fetchone()[0],
            "studies": q("SELECT count(*) FROM studies").fetchone()[0],
            "series": q("SELECT count(*) FROM series").fetchone()[0],
            "files": q("SELECT count(*) FROM files WHERE error IS NULL").fetchone()[0],
            "unreadable": q("SELECT count(*) FROM files WHERE error IS NOT NULL").fetchone()[0],
        }

    def mark_opened(self, study_uid: str, when: float | None = None) -> None:
        """Record that ``study_uid`` was opened now (or at Unix time ``when``): it sorts first afterwards."""
        with _transaction(self.conn):
            self.conn.execute("UPDATE studies SET last_opened = ? WHERE uid = ?",
                              (time.time() if when is None else when, study_uid))


def _inside(path: str, roots: Iterable[str | Path]) -> bool:
    for root in roots:
        root = os.path.abspath(root)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


class _IdCache:
    """Row ids handed out during one import, so each patient/study/series is upserted once."""

    def __init__(self) -> None:
        self.patients: dict[str, int] = {}
        self.studies: dict[str, int] = {}
        self.series: dict[str, int] = {}

    def clear(self) -> None:
        self.patients.clear()
        self.studies.clear()
        self.series.clear()


class _Serial:
    """A stand-in for a thread pool that maps in the calling thread (``workers=1``)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items):  # noqa: ANN001 - mirrors Executor.map
        return map(fn, items)


class _transaction:  # noqa: N801 - used like a function: ``with _transaction(conn):``
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception (KeyboardInterrupt included)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
