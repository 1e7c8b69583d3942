"""The list of PACS / DICOMweb servers: add, edit, remove, and Test (C-ECHO or a one-study QIDO search).

The dialog edits copies of :class:`viewer.net.ServerConfig`; :meth:`ServersDialog.servers` returns the list
when the user presses OK (``app.settings.set_servers`` then saves it, secrets apart). Passwords and tokens
are typed into a masked field and never shown again in clear.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.browser.workers import NetWorker
from app.panels.dialogs import ok_cancel
from viewer.net import ServerConfig, connect


class ServersDialog(QDialog):
    """Edit the server list. ``servers`` are copied; read the result with :meth:`servers` after OK."""

    def __init__(self, servers: list[ServerConfig], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS and DICOMweb servers")
        self.resize(720, 460)
        self._items = [replace(s) for s in servers]
        self._current = -1
        self._worker: NetWorker | None = None
        lay = QHBoxLayout(self)
        left = QVBoxLayout()
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._select)
        add_dimse = QPushButton("Add DICOM node")
        add_web = QPushButton("Add DICOMweb")
        self.remove_button = QPushButton("Remove")
        add_dimse.clicked.connect(lambda: self.add(ServerConfig(self._free_name("PACS"))))
        add_web.clicked.connect(lambda: self.add(ServerConfig(self._free_name("DICOMweb"), kind="dicomweb",
                                                              url="https://")))
        self.remove_button.clicked.connect(self.remove_current)
        left.addWidget(self.list, 1)
        for b in (add_dimse, add_web, self.remove_button):
            left.addWidget(b)
        lay.addLayout(left, 1)
        right = QVBoxLayout()
        self._build_form(right)
        lay.addLayout(right, 2)
        for s in self._items:
            self.list.addItem(s.name)
        if self._items:
            self.list.setCurrentRow(0)
        self._enable()

    # ---- form ------------------------------------------------------------------------------------------
    def _build_form(self, into: QVBoxLayout) -> None:
        common = QFormLayout()
        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.addItem("DICOM node (C-FIND / C-GET / C-MOVE)", "dimse")
        self.kind.addItem("DICOMweb (QIDO / WADO / STOW-RS)", "dicomweb")
        self.kind.currentIndexChanged.connect(lambda _i: self.pages.setCurrentIndex(self.kind.currentIndex()))
        common.addRow("Name", self.name)
        common.addRow("Kind", self.kind)
        into.addLayout(common)
        self.pages = QStackedWidget()
        dimse = QWidget()
        f = QFormLayout(dimse)
        self.host = QLineEdit()
        self.port = _spin(1, 65535)
        self.called_ae = QLineEdit()
        self.called_ae.setMaxLength(16)
        self.calling_ae = QLineEdit()
        self.calling_ae.setMaxLength(16)
        self.retrieve = QComboBox()
        self.retrieve.addItem("C-GET (no incoming connection)", "get")
        self.retrieve.addItem("C-MOVE to Lucent's storage port", "move")
        self.store_port = _spin(1, 65535)
        self.tls = QCheckBox("DICOM over TLS")
        f.addRow("Host", self.host)
        f.addRow("Port", self.port)
        f.addRow("Server AE title (called)", self.called_ae)
        f.addRow("Lucent's AE title (calling)", self.calling_ae)
        f.addRow("Retrieve with", self.retrieve)
        f.addRow("Storage port for C-MOVE", self.store_port)
        f.addRow("", self.tls)
        web = QWidget()
        g = QFormLayout(web)
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        self.auth.addItem("None", "none")
        self.auth.addItem("Basic (user name + password)", "basic")
        self.auth.addItem("Bearer token", "bearer")
        self.username = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("password or token (stored apart, readable by you only)")
        g.addRow("URL", self.url)
        g.addRow("Authentication", self.auth)
        g.addRow("User name", self.username)
        g.addRow("Password / token", self.secret)
        self.pages.addWidget(dimse)
        self.pages.addWidget(web)
        into.addWidget(self.pages)
        extra = QFormLayout()
        self.ca_file = QLineEdit()
        self.ca_file.setPlaceholderText("system certificates")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        extra.addRow("CA file (TLS)", self.ca_file)
        extra.addRow("Timeout", self.timeout)
        into.addLayout(extra)
        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_current)
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        into.addLayout(test_row)
        into.addStretch(1)
        into.addWidget(ok_cancel(self))

    def _free_name(self, stem: str) -> str:
        names = {s.name for s in self._items}
        n = 1
        while f"{stem} {n}" in names:
            n += 1
        return f"{stem} {n}"

    def _enable(self) -> None:
        has = self._current >= 0
        for w in (self.name, self.kind, self.pages, self.ca_file, self.timeout, self.test_button,
                  self.remove_button):
            w.setEnabled(has)

    def _show(self, s: ServerConfig) -> None:
        self.name.setText(s.name)
        self.kind.setCurrentIndex(0 if s.kind == "dimse" else 1)
        self.pages.setCurrentIndex(self.kind.currentIndex())
        self.host.setText(s.host)
        self.port.setValue(int(s.port))
        self.called_ae.setText(s.called_ae)
        self.calling_ae.setText(s.calling_ae)
        self.retrieve.setCurrentIndex(max(0, self.retrieve.findData(s.retrieve)))
        self.store_port.setValue(int(s.store_port))
        self.tls.setChecked(bool(s.tls))
        self.url.setText(s.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(s.auth)))
        self.username.setText(s.username)
        self.secret.setText(s.secret)
        self.ca_file.setText(s.ca_file)
        self.timeout.setValue(float(s.timeout_s))
        self.test_result.setText("")

    def _read(self) -> ServerConfig:
        """The form as a ServerConfig."""
        return ServerConfig(
            name=self.name.text().strip(), kind=self.kind.currentData(), host=self.host.text().strip(),
            port=self.port.value(), called_ae=self.called_ae.text().strip(),
            calling_ae=self.calling_ae.text().strip(), retrieve=self.retrieve.currentData(),
            store_port=self.store_port.value(), url=self.url.text().strip(), tls=self.tls.isChecked(),
            ca_file=self.ca_file.text().strip(), auth=self.auth.currentData(),
            username=self.username.text().strip(), secret=self.secret.text(), timeout_s=self.timeout.value(),
        )

    def _commit(self) -> None:
        if 0 <= self._current < len(self._items):
            self._items[self._current] = self._read()
            self.list.item(self._current).setText(self._items[self._current].name)

    def _select(self, row: int) -> None:
        self._commit()
        self._current = row
        if 0 <= row < len(self._items):
            self._show(self._items[row])
        self._enable()

    # ---- public API ----------------------------------------------------------------------------------
    def add(self, server: ServerConfig) -> None:
        """Append ``server`` and select it."""
        self._commit()
        self._items.append(server)
        self.list.addItem(server.name)
        self.list.setCurrentRow(len(self._items) - 1)

    def remove_current(self) -> None:
        row = self._current
        if 0 <= row < len(self._items):
            self._current = -1
            del self._items[row]
            self.list.takeItem(row)
            if not self._items:
                self._enable()

    def servers(self) -> list[ServerConfig]:
        """The edited list (the form's pending changes included)."""
        self._commit()
        return [replace(s) for s in self._items]

    def problems(self) -> list[str]:
        """What stops the list from being saved: per server, its problems; duplicate names."""
        out = [f"{s.name or '(unnamed)'}: {p}" for s in self.servers() for p in s.problems()]
        names = [s.name for s in self._items]
        out += [f"two servers are called {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
        return out

    def accept(self) -> None:
        problems = self.problems()
        if problems:
            self.test_result.setText("Cannot save: " + "; ".join(problems))
            return
        self._stop_test()
        super().accept()

    def reject(self) -> None:
        self._stop_test()
        super().reject()

    def test_current(self) -> None:
        """C-ECHO (DICOM node) or a one-study search (DICOMweb) in the background; the answer shows below."""
        self._commit()
        if self._current < 0 or self._worker is not None:
            return
        server = self._items[self._current]

        def task(_progress, _cancelled) -> str:  # noqa: ANN001
            client = connect(server)
            client.echo()
            answered = "C-ECHO answered" if server.kind == "dimse" else "search answered"
            return f"OK: {server.describe()}: {answered}"

        self.test_result.setText("Testing…")
        self.test_button.setEnabled(False)
        worker = NetWorker(task)
        worker.finished.connect(self._tested_ok)  # bound methods: delivered on the GUI thread
        worker.failed.connect(self._tested)
        worker.cancelled.connect(self._tested)
        self._worker = worker
        worker.start("lucent-net-test")

    def _tested_ok(self, text: object) -> None:
        self._tested(str(text))

    def _tested(self, text: str) -> None:
        self._stop_test()
        self.test_result.setText(text)
        self.test_button.setEnabled(self._current >= 0)

    def _stop_test(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def is_testing(self) -> bool:
        return self._worker is not None


def _spin(lo: int, hi: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    return box
