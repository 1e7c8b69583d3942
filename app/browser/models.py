"""Qt table model of the study list: the rows come from :meth:`StudyIndex.studies` (plain records)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from viewer.io.index import StudyRow, format_person_name

COLUMNS = ("Patient name", "Patient ID", "Birth date", "Study date", "Modality", "Description", "Series")
HIDDEN_NAME = "•••"
Index = QModelIndex | QPersistentModelIndex


def format_date(da: str) -> str:
    """DICOM ``YYYYMMDD`` → ``YYYY-MM-DD`` (other text is shown as is)."""
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}" if len(da) == 8 and da.isdigit() else da


class StudyTableModel(QAbstractTableModel):
    """Studies as rows, :data:`COLUMNS` as columns; ``hide_names`` masks the patient name column."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[StudyRow] = []
        self.hide_names = False

    def set_rows(self, rows: list[StudyRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def set_hide_names(self, hide: bool) -> None:
        self.hide_names = hide
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self.text(row, index.column())
        if role == Qt.ItemDataRole.UserRole:
            return row.uid
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 6:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def text(self, row: StudyRow, column: int) -> str:
        """The text shown in one cell."""
        if column == 0:
            if self.hide_names:
                return HIDDEN_NAME
            return format_person_name(row.patient_name) or ("(file)" if row.kind != "dicom" else "")
        return (row.patient_id, format_date(row.birth_date), format_date(row.study_date), ", ".join(row.modalities),
                row.description, str(row.n_series))[column - 1]
