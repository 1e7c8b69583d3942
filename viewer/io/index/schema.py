"""The study index database: connection settings and versioned schema migrations (stdlib ``sqlite3``).

The schema version is SQLite's ``PRAGMA user_version``. :data:`MIGRATIONS` holds one list of statements per
version; :func:`connect` applies the missing ones in order, each in its own transaction, so an interrupted
upgrade leaves the database at the previous version. A database written by a newer Lucent (a version above
``len(MIGRATIONS)``) is refused rather than misread.

Tables (v2):
    patients(id, key UNIQUE, patient_id, name, birth_date, sex)
    studies(id, uid UNIQUE, patient → patients, study_date 'YYYYMMDD', study_time, description, accession,
            kind 'dicom'|'nifti'|'image', search = case-folded text the filter box matches, last_opened)
    series(id, uid UNIQUE, study → studies, modality, description, number, kind)
    files(id, path UNIQUE, size, mtime_ns, series → series (NULL for unreadable files), sop_uid,
          instance, frames, error (NULL for indexed files))
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

MIGRATIONS: list[list[str]] = [
    # v1: patient → study → series → file, with unreadable files kept in `files` (series NULL, error set)
    [
        """CREATE TABLE patients (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            patient_id TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL DEFAULT '',
            birth_date TEXT NOT NULL DEFAULT '',
            sex TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE studies (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            patient INTEGER NOT NULL REFERENCES patients(id),
            study_date TEXT NOT NULL DEFAULT '',
            study_time TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            accession TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL DEFAULT 'dicom',
            search TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX studies_patient ON studies(patient)",
        "CREATE INDEX studies_date ON studies(study_date)",
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            study INTEGER NOT NULL REFERENCES studies(id),
            modality TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            number INTEGER,
            kind TEXT NOT NULL DEFAULT 'dicom')""",
        "CREATE INDEX series_study ON series(study, modality)",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            series INTEGER REFERENCES series(id),
            sop_uid TEXT,
            instance INTEGER,
            frames INTEGER NOT NULL DEFAULT 1,
            error TEXT)""",
        "CREATE INDEX files_series ON files(series, instance)",
        "CREATE INDEX files_sop ON files(sop_uid) WHERE sop_uid IS NOT NULL",
    ],
    # v2: "recently opened first" in the browser
    [
        "ALTER TABLE studies ADD COLUMN last_opened REAL",
        "CREATE INDEX studies_opened ON studies(last_opened)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class IndexDatabaseError(Exception):
    """The database cannot be used (newer schema, not a database); ``str()`` is one user-facing line."""


def connect(path: str | Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating if needed) the index at ``path`` in WAL mode and bring its schema up to date.

    The connection is in autocommit mode (``isolation_level=None``): callers open transactions explicitly
    with ``BEGIN`` (see :func:`transaction`). ``timeout`` is how long a writer waits for another one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=True)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise IndexDatabaseError(f"{path}: not a usable Lucent study index ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply migrations up to ``target``; returns the version reached. Each step is one transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise IndexDatabaseError(f"the study index was written by a newer Lucent (schema v{version}, "
                          f"this version reads up to v{SCHEMA_VERSION})")
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the write lock
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < target:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version
