"""The study browser panel: filterable study table, series list with thumbnails, import with progress, and
(given the settings) a "Remote (PACS)" tab that searches the configured servers and retrieves into the library.

Wiring (``app.main_window`` does it)::

    browser = StudyBrowser(open_series=lambda paths, uid: window.open_series(paths, uid))
    window._add_dock("Studies", browser)
    browser.import_paths([folder])      # File ▸ Import…, or a dropped folder

Double-clicking a series (or a study: its largest series) calls ``open_series(paths, series_uid)`` with the
series' files in InstanceNumber order, emits :attr:`StudyBrowser.series_activated`, and marks the study as
recently opened (it moves to the top).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.settings import Settings
from viewer.io.index import ImportReport, SeriesRow, StudyFilter, StudyIndex, default_db_path
from viewer.io.thumbnails import DEFAULT_SIZE
from viewer.net.library import default_library

from .fields import date_bound, date_edit, set_date_bound, studies_over_series
from .models import StudyTableModel
from .remote import RemoteStudies
from .workers import ImportWorker, ThumbnailWorker, start_in_thread

OpenSeries = Callable[[list[str], str], object]


class StudyBrowser(QWidget):
    """Browse and open the studies of the local library.

    Args:
        db_path: the index database (default :func:`viewer.io.index.default_db_path`).
        open_series: called as ``open_series(paths, series_uid)`` on double-click.
        thumbnail_dir: thumbnail cache folder (default ``<data folder>/thumbnails``).
        hide_names: start with patient names hidden.

    Signals:
        series_activated(paths: list, series_uid: str): a series was double-clicked.
        import_started(): an import began.
        import_finished(report: ImportReport): an import ended (``report.cancelled`` after Cancel).
        hide_names_changed(bool): the "Hide patient names" toggle changed (to persist it).
    """

    series_activated = Signal(list, str)
    import_started = Signal()
    import_finished = Signal(object)
    hide_names_changed = Signal(bool)

    def __init__(self, db_path: str | Path | None = None, open_series: OpenSeries | None = None,
                 thumbnail_dir: str | Path | None = None, hide_names: bool = False,
                 parent: QWidget | None = None, settings: Settings | None = None,
                 library: str | Path | None = None) -> None:
        super().__init__(parent)
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.settings = settings
        self.library = Path(library) if library is not None else default_library()
        self.remote: RemoteStudies | None = None
        self.open_series = open_series
        self.index = StudyIndex(self.db_path)
        self.last_report: ImportReport | None = None
        self._import_thread: QThread | None = None
        self._import_worker: ImportWorker | None = None
        self._series: list[SeriesRow] = []
        self._build(hide_names)
        self._thumbs = ThumbnailWorker(thumbnail_dir, DEFAULT_SIZE)
        self._thumbs.ready.connect(self._on_thumbnail)
        self._thumb_thread = None  # started on the first thumbnail request, so an idle panel holds no thread
        self.refresh()

    # ---- layout ---------------------------------------------------------------------------------------
    def _build(self, hide_names: bool) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        outer.addWidget(self.tabs)
        local = QWidget()
        lay = QVBoxLayout(local)
        self.tabs.addTab(local, "Library")
        if self.settings is not None:
            self._build_remote(hide_names)
        row = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: name, ID, description, modality…")
        self.filter_edit.setClearButtonEnabled(True)
        self.modality_box = QComboBox()
        self.modality_box.setToolTip("Only studies with a series of this modality")
        self.date_from = date_edit("Study date from (blank: any)")
        self.date_to = date_edit("Study date to (blank: any)")
        row.addWidget(self.filter_edit, 3)
        row.addWidget(self.modality_box)
        row.addWidget(QLabel("from"))
        row.addWidget(self.date_from)
        row.addWidget(QLabel("to"))
        row.addWidget(self.date_to)
        lay.addLayout(row)

        from .models import COLUMNS

        self.model = StudyTableModel()
        self.model.hide_names = hide_names
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setSectionResizeMode(COLUMNS.index("Description"),
                                                           QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_series())
        self.table.doubleClicked.connect(self._on_study_double_clicked)

        self.series_list = QListWidget()
        self.series_list.setIconSize(QSize(DEFAULT_SIZE, DEFAULT_SIZE))
        self.series_list.setUniformItemSizes(True)
        self.series_list.itemDoubleClicked.connect(self._on_series_double_clicked)
        lay.addWidget(studies_over_series(self.table, self.series_list), 1)

        bottom = QHBoxLayout()
        self.hide_names_box = QCheckBox("Hide patient names")
        self.hide_names_box.setToolTip("For screen sharing: patient names are masked in the list")
        self.hide_names_box.setChecked(hide_names)
        self.hide_names_box.toggled.connect(self.set_hide_names)
        self.status = QLabel("")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_import)
        self.progress.hide()
        self.cancel_button.hide()
        bottom.addWidget(self.hide_names_box)
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.cancel_button)
        lay.addLayout(bottom)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self.refresh)
        self.filter_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.modality_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.date_from.dateChanged.connect(lambda _d: self.refresh())
        self.date_to.dateChanged.connect(lambda _d: self.refresh())

    def _build_remote(self, hide_names: bool) -> None:
        from app.settings import servers

        settings = self.settings
        self.remote = RemoteStudies(lambda: servers(settings), self.db_path, self.library,
                                    edit_servers=self.edit_servers, hide_names=hide_names)
        self.remote.retrieved.connect(self._on_retrieved)
        self.tabs.addTab(self.remote, "Remote (PACS)")

    def edit_servers(self) -> bool:
        """Open the servers dialog; True when the user saved a changed list."""
        from app.panels.servers_dialog import ServersDialog
        from app.settings import servers, set_servers

        if self.settings is None:
            return False
        dlg = ServersDialog(servers(self.settings), self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return False
        set_servers(self.settings, dlg.servers())
        if self.remote is not None:
            self.remote.reload_servers()
        return True

    def _on_retrieved(self, report) -> None:  # noqa: ANN001 - viewer.net.RetrieveReport
        """A retrieve finished: show the library with the retrieved study selected; open it if asked."""
        self._fill_modalities()
        self.refresh()
        if not report.series_uids:
            return
        study = self.index.study_of_series(report.series_uids[0])
        if study:
            self.select_study(study)
        if self.remote is not None and self.remote.open_after:
            self.remote.open_after = False
            best = max(self.index.series(study) if study else [], key=lambda s: (s.n_frames, s.n_files),
                       default=None)
            if best is not None:
                self.activate_series(best.uid)
        self.status.setText("Retrieved: " + report.summary())
        self.tabs.setCurrentIndex(0)

    # ---- filtering ------------------------------------------------------------------------------------
    def current_filter(self) -> StudyFilter:
        """The filter the controls describe."""

        modality = self.modality_box.currentData() or ""
        return StudyFilter(self.filter_edit.text(), modality, date_bound(self.date_from), date_bound(self.date_to))

    def set_filter(self, text: str = "", modality: str = "", date_from: str = "", date_to: str = "") -> None:
        """Set the controls (dates as YYYYMMDD or YYYY-MM-DD, '' for no bound) and refresh at once."""
        self.filter_edit.blockSignals(True)
        self.filter_edit.setText(text)
        self.filter_edit.blockSignals(False)
        set_date_bound(self.date_from, date_from)
        set_date_bound(self.date_to, date_to)
        self._fill_modalities(select=modality)
        self.refresh()

    def _fill_modalities(self, select: str | None = None) -> None:
        current = self.modality_box.currentData() if select is None else select
        self.modality_box.blockSignals(True)
        self.modality_box.clear()
        self.modality_box.addItem("All modalities", "")
        for m in self.index.modalities():
            self.modality_box.addItem(m, m)
        i = self.modality_box.findData(current or "")
        self.modality_box.setCurrentIndex(max(0, i))
        self.modality_box.blockSignals(False)

    def refresh(self) -> None:
        """Re-read the study list with the current filter, keeping the selected study when still listed."""
        self._filter_timer.stop()
        selected = self.selected_study_uid()
        if self.modality_box.count() == 0:
            self._fill_modalities()
        try:
            rows = self.index.studies(self.current_filter())
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        self.model.set_rows(rows)
        uids = [r.uid for r in rows]
        if selected in uids:
            self.select_study(selected)
        else:
            self._show_series()
        if self._import_thread is None:
            self.status.setText(f"{len(rows)} studies")

    def study_uids(self) -> list[str]:
        """The UIDs of the studies listed, top first."""
        return [r.uid for r in self.model.rows]

    def selected_study_uid(self) -> str | None:
        idx = self.table.selectionModel().currentIndex()
        return self.model.rows[idx.row()].uid if idx.isValid() and idx.row() < len(self.model.rows) else None

    def select_study(self, uid: str) -> None:
        """Select the listed study ``uid`` (shows its series)."""
        for n, r in enumerate(self.model.rows):
            if r.uid == uid:
                self.table.selectionModel().setCurrentIndex(
                    self.model.index(n, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                self._show_series()
                return

    # ---- series and thumbnails ------------------------------------------------------------------------
    def _show_series(self) -> None:
        uid = self.selected_study_uid()
        shown = [self.series_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.series_list.count())]
        self._series = self.index.series(uid) if uid else []
        if [s.uid for s in self._series] == shown:
            return
        self._thumbs.clear()
        self.series_list.clear()
        placeholder = QPixmap(DEFAULT_SIZE, DEFAULT_SIZE)
        placeholder.fill(Qt.GlobalColor.black)
        for s in self._series:
            frames = f", {s.n_frames} frames" if s.n_frames > s.n_files else ""
            text = (f"{s.modality} · {s.description or '(no description)'}\n"
                    f"{'#' + str(s.number) + ' · ' if s.number is not None else ''}"
                    f"{s.n_files} file{'s' if s.n_files != 1 else ''}{frames}")
            item = QListWidgetItem(QIcon(placeholder), text)
            item.setData(Qt.ItemDataRole.UserRole, s.uid)
            self.series_list.addItem(item)
        if self._series and self._thumb_thread is None:
            self._thumb_thread = start_in_thread(self._thumbs, "lucent-thumbnails")
        for s in reversed(self._series):  # the worker takes the newest request first
            self._thumbs.request(s.uid, self.index.series_files(s.uid))

    def _on_thumbnail(self, key: str, png: str) -> None:
        for i in range(self.series_list.count()):
            item = self.series_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == key and png:
                item.setIcon(QIcon(QPixmap(png)))
                item.setData(Qt.ItemDataRole.UserRole + 1, png)

    def thumbnail_of(self, series_uid: str) -> str | None:
        """The PNG shown for ``series_uid`` in the series list, None while it is still a placeholder."""
        for i in range(self.series_list.count()):
            item = self.series_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == series_uid:
                return item.data(Qt.ItemDataRole.UserRole + 1)
        return None

    # ---- opening --------------------------------------------------------------------------------------
    def _on_series_double_clicked(self, item: QListWidgetItem) -> None:
        self.activate_series(item.data(Qt.ItemDataRole.UserRole))

    def _on_study_double_clicked(self, index) -> None:  # noqa: ANN001 - QModelIndex
        uid = self.model.rows[index.row()].uid
        series = self.index.series(uid)
        if series:
            self.activate_series(max(series, key=lambda s: (s.n_frames, s.n_files)).uid)

    def activate_series(self, series_uid: str) -> None:
        """Open ``series_uid``: call ``open_series(paths, uid)``, emit :attr:`series_activated`, mark recent."""
        paths = self.index.series_files(series_uid)
        if not paths:
            return
        study = self.index.study_of_series(series_uid)
        if study:
            self.index.mark_opened(study)
        self.series_activated.emit(paths, series_uid)
        if self.open_series is not None:
            self.open_series(paths, series_uid)
        self.refresh()

    # ---- names ----------------------------------------------------------------------------------------
    def set_hide_names(self, hide: bool) -> None:
        """Mask (or show) patient names in the table."""
        if self.hide_names_box.isChecked() != hide:
            self.hide_names_box.setChecked(hide)  # re-enters through toggled
            return
        self.model.set_hide_names(hide)
        if self.remote is not None:
            self.remote.set_hide_names(hide)
        self.hide_names_changed.emit(hide)

    # ---- import ---------------------------------------------------------------------------------------
    def import_paths(self, paths: list[str | Path]) -> bool:
        """Index ``paths`` in the background; False when an import is already running."""
        if self._import_thread is not None:
            return False
        worker = ImportWorker(self.db_path, [str(p) for p in paths])
        thread = QThread(self)
        thread.setObjectName("lucent-import")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_import_finished)
        worker.failed.connect(self._on_import_failed)
        self._import_thread, self._import_worker = thread, worker
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.status.setText("Importing…")
        self.import_started.emit()
        thread.start()
        return True

    def is_importing(self) -> bool:
        return self._import_thread is not None

    def cancel_import(self) -> None:
        """Stop the running import at the next file (what was indexed so far stays)."""
        if self._import_worker is not None:
            self._import_worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _end_import(self) -> None:
        thread = self._import_thread
        self._import_thread = self._import_worker = None
        if thread is not None:
            thread.quit()
            thread.wait()
        self.progress.hide()
        self.cancel_button.hide()

    def _on_import_finished(self, report: ImportReport) -> None:
        self._end_import()
        self.last_report = report
        self._fill_modalities()
        self.refresh()
        self.status.setText(("Import cancelled: " if report.cancelled else "Imported: ") + report.summary())
        self.import_finished.emit(report)

    def _on_import_failed(self, message: str) -> None:
        self._end_import()
        self.status.setText(message)
        self.import_finished.emit(ImportReport(cancelled=True))

    # ---- teardown -------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel an import, stop the worker threads and close the database (call before deleting)."""
        if self.remote is not None:
            self.remote.shutdown()
        if self._import_worker is not None:
            self._import_worker.cancel()
        if self._import_thread is not None:
            self._import_thread.quit()
            self._import_thread.wait()
            self._import_thread = self._import_worker = None
        self._thumbs.clear()
        if self._thumb_thread is not None:
            self._thumb_thread.quit()
            self._thumb_thread.wait()
            self._thumb_thread = None
        self.index.close()

    def closeEvent(self, event) -> None:  # noqa: N802, ANN001
        self.shutdown()
        super().closeEvent(event)
