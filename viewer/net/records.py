"""Plain records for what a remote server lists: studies, series, and the search filter (Qt-free)."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.index import normalise_date


@dataclass(frozen=True)
class QueryFilter:
    """A study search. Empty fields match anything.

    ``patient_name`` may hold DICOM wildcards (``*``, ``?``); a plain word matches names that start with it
    (``smith`` → ``smith*``). Dates are ``YYYYMMDD`` or ``YYYY-MM-DD``; ``modality`` is a code such as ``CT``.
    """

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    modality: str = ""
    date_from: str = ""
    date_to: str = ""
    limit: int = 200

    def name_pattern(self) -> str:
        """``patient_name`` as a DICOM wildcard pattern ('' for any)."""
        name = self.patient_name.strip()
        if not name or any(c in name for c in "*?"):
            return name
        return name + "*"

    def date_range(self) -> str:
        """The DICOM date-range matching value: ``'20200101-20201231'``, ``'20200101-'``, ``''``…"""
        lo, hi = normalise_date(self.date_from), normalise_date(self.date_to)
        if not lo and not hi:
            return ""
        return lo if lo and lo == hi else f"{lo}-{hi}"


@dataclass(frozen=True)
class RemoteStudy:
    """One study as the server lists it (DICOM attribute values as text, names in DICOM ``^`` form)."""

    uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None


@dataclass(frozen=True)
class RemoteSeries:
    """One series of a remote study."""

    uid: str
    study_uid: str
    modality: str = ""
    description: str = ""
    number: int | None = None
    n_instances: int | None = None


def as_int(value: object) -> int | None:
    """An IS/US value as int, None when absent or not a number."""
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _text(ds: object, keyword: str) -> str:
    value = getattr(ds, keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def study_from_dataset(ds: object) -> RemoteStudy:
    """A :class:`RemoteStudy` from a C-FIND identifier or a QIDO-RS result (as a pydicom Dataset)."""
    mods = _text(ds, "ModalitiesInStudy")
    return RemoteStudy(
        uid=_text(ds, "StudyInstanceUID"), patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"), birth_date=_text(ds, "PatientBirthDate"),
        study_date=_text(ds, "StudyDate"), description=_text(ds, "StudyDescription"),
        accession=_text(ds, "AccessionNumber"),
        modalities=tuple(sorted({m for m in mods.split("\\") if m})),
        n_series=as_int(getattr(ds, "NumberOfStudyRelatedSeries", None)),
        n_instances=as_int(getattr(ds, "NumberOfStudyRelatedInstances", None)),
    )


def series_from_dataset(ds: object, study_uid: str = "") -> RemoteSeries:
    """A :class:`RemoteSeries` from a C-FIND identifier or a QIDO-RS result."""
    return RemoteSeries(
        uid=_text(ds, "SeriesInstanceUID"), study_uid=_text(ds, "StudyInstanceUID") or study_uid,
        modality=_text(ds, "Modality"), description=_text(ds, "SeriesDescription"),
        number=as_int(getattr(ds, "SeriesNumber", None)),
        n_instances=as_int(getattr(ds, "NumberOfSeriesRelatedInstances", None)),
    )


def matches(study: RemoteStudy, flt: QueryFilter) -> bool:
    """Whether ``study`` passes ``flt``'s modality test (servers that ignore ModalitiesInStudy matching)."""
    return not flt.modality or not study.modalities or flt.modality.upper() in study.modalities
