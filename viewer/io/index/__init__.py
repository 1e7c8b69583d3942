"""The local study library: a SQLite index of DICOM/NIfTI/image files referenced in place (Qt-free).

Public API:
    StudyIndex(path=None)                      open/create the database (default: default_db_path())
      .import_paths(roots, progress, cancelled) -> ImportReport
      .studies(StudyFilter) -> list[StudyRow]  .series(study_uid) -> list[SeriesRow]
      .series_files(series_uid) -> list[str]   .mark_opened(study_uid)
      .unreadable_files() / .duplicates() / .detect_removed() / .counts() / .modalities()
    load_series(paths, series_uid) -> Volume   open one indexed series from its files
    default_db_path(), data_dir()              where the database and thumbnail cache live
"""

from .open import load_series, series_candidates
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
from .schema import SCHEMA_VERSION, IndexDatabaseError
from .store import StudyIndex, data_dir, default_db_path

__all__ = [
    "SCHEMA_VERSION", "DuplicateInstance", "ImportReport", "IndexDatabaseError", "SeriesRow", "StudyFilter",
    "StudyIndex", "StudyRow", "UnreadableFile", "data_dir", "default_db_path", "format_person_name",
    "load_series", "normalise_date", "series_candidates",
]  # fmt: skip
