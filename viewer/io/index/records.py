"""Plain records returned by the study index (no database or Qt objects escape it)."""

from __future__ import annotations

from dataclasses import dataclass, field

NOT_AN_IMAGE = "not a DICOM, NIfTI or image file"  # the reason given for text, CSV and other files


@dataclass(frozen=True, slots=True)
class StudyFilter:
    """What the browser's filter box asks for; empty fields match everything.

    Attributes:
        text: words that must all occur (case-insensitive, any order) in the patient name, patient ID,
            study description, accession number or a series modality.
        modality: a modality code (``"CT"``) one of the study's series must have.
        date_from, date_to: inclusive study date bounds, ``YYYYMMDD`` or ``YYYY-MM-DD``. Studies without a
            date are left out when either bound is set.
    """

    text: str = ""
    modality: str = ""
    date_from: str = ""
    date_to: str = ""


@dataclass(frozen=True, slots=True)
class StudyRow:
    """One study as the browser table shows it. Dates are DICOM ``YYYYMMDD`` strings ('' if unknown).

    ``patient_name`` is the raw DICOM PN value (``"Family^Given"``); see :func:`format_person_name`.
    ``kind`` is ``"dicom"``, ``"nifti"`` or ``"image"`` (the last two are one-series studies of one file).
    ``last_opened`` is a Unix time, or None if never opened from the browser.
    """

    uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    study_date: str
    description: str
    accession: str
    modalities: tuple[str, ...]
    n_series: int
    kind: str
    last_opened: float | None


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """One series of a study; ``n_files`` counts its files (one for NIfTI, images and multi-frame DICOM)."""

    uid: str
    study_uid: str
    modality: str
    description: str
    number: int | None
    kind: str
    n_files: int
    n_frames: int


@dataclass(frozen=True, slots=True)
class UnreadableFile:
    """A file that the import could not index, with the one-line reason."""

    path: str
    reason: str

    @property
    def not_an_image(self) -> bool:
        """A note, CSV or licence file rather than a damaged image."""
        return self.reason == NOT_AN_IMAGE


@dataclass(frozen=True, slots=True)
class DuplicateInstance:
    """Several files carrying the same SOPInstanceUID (copies, or the same image in two transfer syntaxes)."""

    sop_uid: str
    paths: tuple[str, ...]


@dataclass(slots=True)
class ImportReport:
    """What one :meth:`StudyIndex.import_paths` run did.

    Attributes:
        found: files seen in the walk.
        indexed: files read and (re)indexed as DICOM, NIfTI or image this run.
        unchanged: files skipped because their size and mtime matched the index.
        removed: indexed files under the imported roots that no longer exist (removed from the index).
        unreadable: files read this run that are not DICOM/NIfTI/images or could not be parsed.
        unreadable_files: those files with reasons.
        duplicates: SOPInstanceUIDs held by more than one file under the imported roots.
        cancelled: the run stopped early on ``cancelled()``; what was committed stays valid.
        seconds: wall time of the run.
    """

    found: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: int = 0
    unreadable_files: list[UnreadableFile] = field(default_factory=list)
    duplicates: list[DuplicateInstance] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def other_files(self) -> int:
        """Unreadable files that are simply not images (notes, CSV, licences), as opposed to damaged ones."""
        return sum(1 for u in self.unreadable_files if u.not_an_image)

    def summary(self) -> str:
        """One line, e.g. ``"120 indexed, 3 unchanged, 0 removed, 2 unreadable, 5 other files, 1 duplicate UID"``."""
        dup, other = len(self.duplicates), self.other_files
        text = (f"{self.indexed} indexed, {self.unchanged} unchanged, {self.removed} removed, "
                f"{self.unreadable - other} unreadable, {other} other file{'s' if other != 1 else ''}, "
                f"{dup} duplicate UID{'s' if dup != 1 else ''}")
        return text + (" (cancelled)" if self.cancelled else "")


def format_person_name(pn: str) -> str:
    """DICOM PN ``"Family^Given^Middle^Prefix^Suffix"`` → ``"Family, Given Middle"`` for display.

    Only the first (alphabetic) component group is shown; ideographic/phonetic groups after ``=`` are dropped.
    """
    alpha = pn.split("=", 1)[0]
    parts = [p.strip() for p in alpha.split("^")]
    family = parts[0] if parts else ""
    given = " ".join(p for p in parts[1:3] if p)
    if family and given:
        return f"{family}, {given}"
    return family or given


def normalise_date(text: str) -> str:
    """``"2022-12-08"``, ``"2022.12.08"`` or ``"20221208"`` → ``"20221208"``; '' for '' ; ValueError otherwise."""
    digits = "".join(ch for ch in text.strip() if ch.isdigit())
    if not text.strip():
        return ""
    if len(digits) != 8:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)")
    return digits
