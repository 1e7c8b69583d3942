"""Facts from a DICOM header for ``Volume.metadata`` (strings and floats only, no pydicom objects)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dicom_header import DicomHeader


def _first(value: Any) -> Any:
    if value is None:
        return None
    try:
        if not isinstance(value, str | bytes) and len(value) > 0:
            return value[0]
    except TypeError:
        pass
    return value


def _float_or_none(value: Any) -> float | None:
    try:
        v = float(_first(value))
    except (TypeError, ValueError):
        return None
    return v


def dicom_metadata(h: DicomHeader, source: str) -> dict[str, Any]:
    """Metadata keys filled when present: window_center, window_width (first value, in output units),
    series_description, patient_name, patient_id, study_date, series_uid, body_part, photometric, source,
    warnings (an empty list, filled by the reader)."""
    md: dict[str, Any] = {"source": source, "warnings": []}
    try:
        wc, ww = _float_or_none(h.get("WindowCenter")), _float_or_none(h.get("WindowWidth"))
    except Exception:  # noqa: BLE001 - a damaged value (pydicom converts nested items lazily): no window then
        wc = ww = None
    if wc is not None and ww is not None and ww > 0:
        md["window_center"], md["window_width"] = wc, ww
    for key, kw in (
        ("series_description", "SeriesDescription"),
        ("patient_name", "PatientName"),
        ("patient_id", "PatientID"),
        ("patient_birth_date", "PatientBirthDate"),
        ("study_date", "StudyDate"),
        ("series_uid", "SeriesInstanceUID"),
        ("body_part", "BodyPartExamined"),
        ("photometric", "PhotometricInterpretation"),
        ("study_description", "StudyDescription"),
        ("study_uid", "StudyInstanceUID"),
    ):
        text = h.text(kw)  # "" when damaged: a malformed optional element must not stop loading
        if text:
            md[key] = text
    return md
