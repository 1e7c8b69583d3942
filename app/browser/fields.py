"""Small widgets shared by the library and remote tabs of the study browser: date bounds, the split."""

from __future__ import annotations

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QDateEdit, QSplitter, QWidget

ANY_DATE = QDate(1800, 1, 1)


def date_edit(tip: str) -> QDateEdit:
    """A date field whose blank (minimum) value means "no bound"."""
    edit = QDateEdit()
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setMinimumDate(ANY_DATE)
    edit.setSpecialValueText(" ")  # shown at the minimum date = no bound
    edit.setDate(ANY_DATE)
    edit.setToolTip(tip)
    return edit


def date_bound(edit: QDateEdit) -> str:
    """The field as ``YYYYMMDD``, '' when blank."""
    return "" if edit.date() == ANY_DATE else edit.date().toString("yyyyMMdd")


def set_date_bound(edit: QDateEdit, value: str) -> None:
    """Set the field from ``YYYYMMDD`` / ``YYYY-MM-DD`` ('' = blank) without emitting dateChanged."""
    digits = value.replace("-", "")
    edit.blockSignals(True)
    edit.setDate(QDate.fromString(digits, "yyyyMMdd") if digits else ANY_DATE)
    edit.blockSignals(False)


def studies_over_series(studies: QWidget, series: QWidget) -> QSplitter:
    """The study table above the series list, 3:2."""
    split = QSplitter(Qt.Orientation.Vertical)
    split.addWidget(studies)
    split.addWidget(series)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 2)
    return split
