"""``lucent import PATH... [--db FILE]``: index folders into the study library from the command line.

Prints one line per count (indexed, skipped unchanged, removed, unreadable, not images, duplicates) and, with
``--list``, the unreadable and non-image files and duplicate SOPInstanceUIDs. Exit status 0 on success (also with
unreadable files), 2 for a missing path or an unusable database, 130 when interrupted (what was committed
stays in the database).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lucent import",
                                description="Index DICOM/NIfTI/image files into Lucent's study library "
                                            "(files are referenced in place, never copied or changed).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder or file to index (recursively)")
    p.add_argument("--db", metavar="FILE", help="database file (default: the user data folder)")
    p.add_argument("--list", action="store_true", help="list unreadable files and duplicate UIDs")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lucent import`` with ``argv`` (the arguments after ``import``); returns the exit status."""
    a = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from viewer.io.index import IndexDatabaseError, StudyIndex

    missing = [p for p in a.paths if not os.path.exists(p)]
    if missing:
        print(f"lucent import: {missing[0]}: file or folder not found", file=sys.stderr)
        return 2
    show = not a.quiet and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\r{done}/{total} files", end="", file=sys.stderr, flush=True)

    try:
        with StudyIndex(a.db) as index:
            report = index.import_paths(a.paths, progress=progress)
            counts = index.counts()
            db = index.path
    except IndexDatabaseError as exc:
        print(f"lucent import: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlucent import: interrupted; files indexed so far are kept", file=sys.stderr)
        return 130
    if show:
        print(file=sys.stderr)
    n_dup_files = sum(len(d.paths) for d in report.duplicates)
    print(f"database:          {db}")
    print(f"files found:       {report.found}")
    print(f"indexed:           {report.indexed}")
    print(f"skipped unchanged: {report.unchanged}")
    print(f"removed:           {report.removed}")
    print(f"unreadable:        {report.unreadable - report.other_files}")
    print(f"not images:        {report.other_files}")
    print(f"duplicates:        {len(report.duplicates)} SOPInstanceUIDs in {n_dup_files} files")
    print(f"library:           {counts['patients']} patients, {counts['studies']} studies, "
          f"{counts['series']} series, {counts['files']} files ({report.seconds:.1f} s)")
    if a.list:
        for u in report.unreadable_files:
            print(f"{'not an image' if u.not_an_image else 'unreadable'}: {u.path}: {u.reason}")
        for d in report.duplicates:
            print(f"duplicate {d.sop_uid}: " + ", ".join(d.paths))
    return 0
