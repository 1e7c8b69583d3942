"""The "Remote" tab of the study browser: search a PACS or DICOMweb server, retrieve into the local library.

Wiring (the study browser does it)::

    remote = RemoteStudies(settings, db_path, library, on_retrieved=browser.retrieved)

Every network call runs in a :class:`~app.browser.workers.NetWorker` thread (search, series listing,
retrieve), one at a time; the GUI only shows results, progress and the one-line messages of
:mod:`viewer.net.errors`. Retrieve stores complete series in the library and indexes them (see
:func:`viewer.net.retrieve_series`); Cancel stops within one instance and the next Retrieve resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.io.index import format_person_name
from viewer.net import (
    QueryFilter,
    RemoteSeries,
    RemoteStudy,
    RetrieveReport,
    ServerConfig,
    connect,
    retrieve_series,
)

from .fields import date_bound, date_edit, set_date_bound, studies_over_series
from .models import HIDDEN_NAME, format_date
from .workers import NetWorker

COLUMNS = ("Patient name", "Patient ID", "Birth date", "Study date", "Modality", "Description", "Accession",
           "Series", "Images")
MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "PT", "NM", "MG", "XA", "SEG", "SR", "OT")


class RemoteStudies(QWidget):
    """Search one of the configured servers and retrieve studies or series into the library.

    Args:
        servers: a callable giving the configured :class:`~viewer.net.ServerConfig` list (re-read on demand).
        db_path: the study index the retrieved series go into.
        library: the folder retrieved files are stored in.
        edit_servers: called by the "Servers…" button (opens the servers dialog); may be None.

    Signals:
        retrieved(report: RetrieveReport): a retrieve completed (its series are in the index).
        busy_changed(bool): a network task started / ended.
        message(str): the one-line status shown under the table (also kept in :attr:`status`).
    """

    retrieved = Signal(object)
    busy_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, servers: Callable[[], list[ServerConfig]], db_path: str | Path, library: str | Path,
                 edit_servers: Callable[[], None] | None = None, hide_names: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._servers_of = servers
        self.db_path, self.library = Path(db_path), Path(library)
        self.hide_names = hide_names
        self.studies: list[RemoteStudy] = []
        self.series: list[RemoteSeries] = []
        self.last_report: RetrieveReport | None = None
        self._worker: NetWorker | None = None
        self._on_result: Callable[[object], None] = lambda _r: None
        self._series_for = ""
        self.open_after = False  # open the study once the running retrieve completes (double-click)
        self._build(edit_servers)
        self.reload_servers()

    # ---- layout ---------------------------------------------------------------------------------------
    def _build(self, edit_servers: Callable[[], None] | None) -> None:
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.server_box = QComboBox()
        self.server_box.setToolTip("The server to search (Edit ▸ Servers… or the button to add one)")
        top.addWidget(QLabel("Server"))
        top.addWidget(self.server_box, 1)
        self.servers_button = QPushButton("Servers…")
        self.servers_button.setEnabled(edit_servers is not None)
        if edit_servers is not None:
            self.servers_button.clicked.connect(edit_servers)
        top.addWidget(self.servers_button)
        lay.addLayout(top)

        keys = QHBoxLayout()
        self.name_edit = _edit("Patient name (smith, smith*^john)")
        self.id_edit = _edit("Patient ID")
        self.accession_edit = _edit("Accession")
        self.modality_box = QComboBox()
        for m in MODALITIES:
            self.modality_box.addItem(m or "Any modality", m)
        self.date_from = date_edit("Study date from (blank: any)")
        self.date_to = date_edit("Study date to (blank: any)")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for w in (self.name_edit, self.id_edit, self.accession_edit):
            w.returnPressed.connect(self.search)
            keys.addWidget(w, 1)
        lay.addLayout(keys)
        when = QHBoxLayout()  # a second row, so that a narrow dock still shows whole fields
        when.addWidget(self.modality_box)
        when.addWidget(QLabel("study date"))
        when.addWidget(self.date_from, 1)
        when.addWidget(QLabel("–"))
        when.addWidget(self.date_to, 1)
        when.addWidget(self.search_button)
        lay.addLayout(when)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(COLUMNS.index("Description"),
                                                           QHeaderView.ResizeMode.Stretch)
        self.table.currentCellChanged.connect(lambda *_: self._list_series())
        self.table.cellDoubleClicked.connect(lambda *_: self.retrieve_selected_study(open_after=True))
        self.series_list = QListWidget()
        self.series_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.series_list.itemDoubleClicked.connect(lambda _i: self.retrieve_selected_series())
        lay.addWidget(studies_over_series(self.table, self.series_list), 1)

        bottom = QHBoxLayout()
        self.retrieve_study_button = QPushButton("Retrieve study")
        self.retrieve_study_button.setToolTip("Copy every series of the selected study into the library")
        self.retrieve_study_button.clicked.connect(self.retrieve_selected_study)
        self.retrieve_series_button = QPushButton("Retrieve series")
        self.retrieve_series_button.clicked.connect(self.retrieve_selected_series)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress.hide()
        self.cancel_button.hide()
        bottom.addWidget(self.retrieve_study_button)
        bottom.addWidget(self.retrieve_series_button)
        bottom.addWidget(self.status, 2)
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.cancel_button)
        lay.addLayout(bottom)
        self._enable()

    # ---- servers --------------------------------------------------------------------------------------
    def reload_servers(self) -> None:
        """Re-read the configured servers into the combo box (keeps the selection by name)."""
        current = self.server_box.currentText()
        self.server_box.clear()
        for s in self._servers_of():
            self.server_box.addItem(s.name)
        i = self.server_box.findText(current)
        if i >= 0:
            self.server_box.setCurrentIndex(i)
        if self.server_box.count() == 0:
            self._say("No server configured: press Servers… to add a PACS or DICOMweb server.")
        self._enable()

    def current_server(self) -> ServerConfig | None:
        name = self.server_box.currentText()
        return next((s for s in self._servers_of() if s.name == name), None)

    def select_server(self, name: str) -> None:
        i = self.server_box.findText(name)
        if i >= 0:
            self.server_box.setCurrentIndex(i)

    # ---- search ---------------------------------------------------------------------------------------
    def query_filter(self) -> QueryFilter:
        return QueryFilter(patient_name=self.name_edit.text(), patient_id=self.id_edit.text(),
                           accession=self.accession_edit.text(),
                           modality=self.modality_box.currentData() or "",
                           date_from=date_bound(self.date_from), date_to=date_bound(self.date_to))

    def set_query(self, name: str = "", patient_id: str = "", accession: str = "", modality: str = "",
                  date_from: str = "", date_to: str = "") -> None:
        """Fill the search fields (dates as YYYYMMDD or YYYY-MM-DD)."""
        self.name_edit.setText(name)
        self.id_edit.setText(patient_id)
        self.accession_edit.setText(accession)
        self.modality_box.setCurrentIndex(max(0, self.modality_box.findData(modality.upper())))
        set_date_bound(self.date_from, date_from)
        set_date_bound(self.date_to, date_to)

    def search(self) -> bool:
        """Search the current server with the fields' filter in the background; False if busy or no server."""
        server = self.current_server()
        if server is None or self.is_busy():
            return False
        flt = self.query_filter()

        def task(_progress, _cancelled) -> list[RemoteStudy]:  # noqa: ANN001
            return connect(server).find_studies(flt)

        self._say(f"Searching {server.name}…")
        return self._run(task, self._show_studies)

    def _show_studies(self, studies: list[RemoteStudy]) -> None:
        self.studies = list(studies)
        self.table.setRowCount(len(self.studies))
        for r, s in enumerate(self.studies):
            for c, text in enumerate(self._cells(s)):
                item = QTableWidgetItem(text)
                if c >= 7:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.series_list.clear()
        self.series, self._series_for = [], ""
        n = len(self.studies)
        self._say(f"{n} stud{'y' if n == 1 else 'ies'} found on {self.server_box.currentText()}"
                  + (" (the first 200: narrow the search)" if n >= 200 else ""))
        if self.studies:
            self.table.selectRow(0)

    def _cells(self, s: RemoteStudy) -> list[str]:
        name = HIDDEN_NAME if self.hide_names else format_person_name(s.patient_name)
        return [name, s.patient_id, format_date(s.birth_date), format_date(s.study_date),
                ", ".join(s.modalities), s.description, s.accession,
                "" if s.n_series is None else str(s.n_series),
                "" if s.n_instances is None else str(s.n_instances)]

    def set_hide_names(self, hide: bool) -> None:
        self.hide_names = hide
        for r, s in enumerate(self.studies):
            item = self.table.item(r, 0)
            if item is not None:
                item.setText(self._cells(s)[0])

    def selected_study(self) -> RemoteStudy | None:
        r = self.table.currentRow()
        return self.studies[r] if 0 <= r < len(self.studies) else None

    def _list_series(self) -> None:
        study = self.selected_study()
        server = self.current_server()
        if study is None or server is None or study.uid == self._series_for or self.is_busy():
            return

        def task(_progress, _cancelled) -> list[RemoteSeries]:  # noqa: ANN001
            return connect(server).find_series(study.uid)

        self._series_for = study.uid
        self._run(task, self._show_series, quiet=True)

    def _show_series(self, series: list[RemoteSeries]) -> None:
        self.series = sorted(series, key=lambda s: (s.number is None, s.number or 0, s.description))
        self.series_list.clear()
        for s in self.series:
            n = "" if s.n_instances is None else f" · {s.n_instances} images"
            item = QListWidgetItem(f"{s.modality} · {s.description or '(no description)'}"
                                   f"{' · #' + str(s.number) if s.number is not None else ''}{n}")
            item.setData(Qt.ItemDataRole.UserRole, s.uid)
            self.series_list.addItem(item)
        self._enable()

    # ---- retrieve -------------------------------------------------------------------------------------
    def retrieve_selected_study(self, open_after: bool = False) -> bool:
        """Retrieve every series of the selected study (and open it when done, with ``open_after``)."""
        study = self.selected_study()
        if study is None or not self.retrieve(study):
            return False
        self.open_after = open_after
        return True

    def retrieve_selected_series(self) -> bool:
        """Retrieve the series selected in the list (all when none is selected)."""
        study = self.selected_study()
        if study is None:
            return False
        chosen = {i.data(Qt.ItemDataRole.UserRole) for i in self.series_list.selectedItems()}
        listed = bool(self.series) and study.uid == self._series_for
        series = [s for s in self.series if s.uid in chosen] if listed else None
        return self.retrieve(study, series or None)

    def retrieve(self, study: RemoteStudy, series: list[RemoteSeries] | None = None) -> bool:
        """Retrieve ``series`` of ``study`` (None: all its series) into the library, in the background."""
        server = self.current_server()
        if server is None or self.is_busy():
            return False
        db, library = self.db_path, self.library

        def task(progress, cancelled) -> RetrieveReport:  # noqa: ANN001
            client = connect(server)
            todo = series if series is not None else client.find_series(study.uid)
            return retrieve_series(client, todo, library, db, progress=progress, cancelled=cancelled)

        label = format_person_name(study.patient_name) if not self.hide_names else study.patient_id
        self.open_after = False
        self._say(f"Retrieving {label or study.uid} from {server.name}…")
        return self._run(task, self._retrieved, cancellable=True)

    def _retrieved(self, report: RetrieveReport) -> None:
        self.last_report = report
        self._say("Retrieved: " + report.summary())
        self.retrieved.emit(report)

    def cancel(self) -> None:
        """Stop the running task (a retrieve keeps what arrived for the next try)."""
        if self._worker is not None:
            self._worker.cancel()
            self.cancel_button.setEnabled(False)
            self._say("Cancelling…")

    # ---- background tasks -------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._worker is not None

    def _run(self, task, on_result, cancellable: bool = False, quiet: bool = False) -> bool:  # noqa: ANN001
        worker = NetWorker(task)
        # bound methods of this GUI-thread object: Qt queues the calls to the GUI thread (a lambda would run
        # in the worker's thread)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._task_finished)
        worker.failed.connect(self._task_stopped)
        worker.cancelled.connect(self._task_stopped)
        self._worker, self._on_result = worker, on_result
        if cancellable:
            self.progress.setRange(0, 0)
            self.progress.show()
            self.cancel_button.setEnabled(True)
            self.cancel_button.show()
        self._enable()
        self.busy_changed.emit(True)
        worker.start("lucent-net")
        return True

    def _task_finished(self, result: object) -> None:
        self._end()
        self._on_result(result)

    def _task_stopped(self, text: str) -> None:
        self._end()
        self._say(text)

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"{done}/{total}")

    def _end(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        self.progress.hide()
        self.cancel_button.hide()
        self._enable()
        self.busy_changed.emit(False)
        if self.selected_study() is not None and self.selected_study().uid != self._series_for:
            self._list_series()

    def _enable(self) -> None:
        idle = self._worker is None
        has_server = self.server_box.count() > 0
        self.search_button.setEnabled(idle and has_server)
        self.server_box.setEnabled(idle)
        has_study = self.selected_study() is not None
        self.retrieve_study_button.setEnabled(idle and has_study)
        self.retrieve_series_button.setEnabled(idle and has_study and bool(self.series))

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)

    def shutdown(self) -> None:
        """Cancel and wait for a running task (before closing)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


def _edit(placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(True)
    return edit

