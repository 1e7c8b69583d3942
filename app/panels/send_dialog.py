"""File ▸ Send Results to PACS: the open study's masks, maps and findings back to a configured server.

The user ticks what to send — each mask as DICOM-SEG, each map as a parametric map and/or a secondary
capture of the current slice, the Results panel's findings as a TID 1500 structured report — and picks a
server. The objects are built and sent in a background :class:`~app.browser.workers.NetWorker` (progress,
Cancel); they land in the source study, referencing the open series (see :mod:`viewer.net.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.browser.workers import NetWorker
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer, LabelsLayer
from viewer.net import ServerConfig, connect


@dataclass
class Outgoing:
    """One object the user may send: its label in the list and how to build it (a Qt-free call)."""

    label: str
    build: Callable[[], object]
    checked: bool = True


def findings_of(panel: QWidget | None) -> tuple[str, dict[str, float]]:
    """(title, {finding: probability}) shown in the Results panel ('' and {} when it shows none).

    Read from the panel's rows: the name (an item or a label) and the bar (per-mille resolution, as shown)."""
    table = getattr(panel, "table", None)
    if table is None:
        return "", {}
    out = {}
    for r in range(table.rowCount()):
        item, label, bar = table.item(r, 0), table.cellWidget(r, 0), table.cellWidget(r, 1)
        name = item.text() if item is not None else label.text() if isinstance(label, QLabel) else ""
        if name and isinstance(bar, QProgressBar):
            out[name] = bar.value() / max(1, bar.maximum())
    title = panel.title.text() if isinstance(getattr(panel, "title", None), QLabel) else ""
    return title, out


def outgoing_objects(doc: Document, findings: dict[str, float], findings_title: str = "") -> list[Outgoing]:
    """What can be sent for ``doc``: masks → SEG; maps → parametric map + secondary capture of the crosshair
    slice; findings, rulers and ellipse ROIs → SR. Secondary captures start unticked (the parametric map
    carries the values)."""
    from viewer.net import outbox

    base = doc.base
    k = int(doc.crosshair_index()[2])
    items: list[Outgoing] = []
    for layer in doc.layers:
        if isinstance(layer, LabelsLayer):
            items.append(Outgoing(f"{layer.name}: DICOM-SEG",
                                  lambda lay=layer: outbox.segmentation(lay.volume, base, lay.label_names,
                                                                        lay.name)))
            items.append(Outgoing(f"{layer.name}: secondary capture of slice {k + 1}",
                                  lambda lay=layer: outbox.secondary_capture(
                                      base, lay.volume, k, "labels", opacity=lay.opacity,
                                      description=lay.name),
                                  checked=False))
        elif isinstance(layer, HeatmapLayer):
            items.append(Outgoing(f"{layer.name}: parametric map",
                                  lambda lay=layer: outbox.parametric_map(
                                      lay.volume, base, lay.legend or lay.name, description=lay.name)))
            items.append(Outgoing(f"{layer.name}: secondary capture of slice {k + 1}",
                                  lambda lay=layer: outbox.secondary_capture(
                                      base, lay.volume, k, lay.colormap, lay.value_range, lay.opacity,
                                      description=lay.name, threshold=lay.threshold),
                                  checked=False))
    rois = [a for a in doc.annotations if a.kind in ("ruler", "ellipse")]
    if findings or rois:
        algorithm = findings_title.split(" · ")[0].strip() or "Lucent"
        what = [f"findings ({len(findings)})"] if findings else []
        what += [f"measurements ({len(rois)})"] if rois else []
        items.append(Outgoing(f"{' and '.join(what)}: structured report (TID 1500)",
                              lambda: outbox.findings_report(base, findings, algorithm=algorithm[:64],
                                                             annotations=rois)))
    return items


class SendResultsDialog(QDialog):
    """Tick results, pick a server, Send; progress and Cancel at the bottom, one-line outcome."""

    def __init__(self, items: list[Outgoing], servers: list[ServerConfig],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send results to PACS")
        self.resize(560, 380)
        self.items = items
        self.servers = servers
        self.sent = 0
        self._worker: NetWorker | None = None
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Objects go into the open study, referencing its series:"))
        self.list = QListWidget()
        for it in items:
            row = QListWidgetItem(it.label)
            row.setFlags(row.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            row.setCheckState(Qt.CheckState.Checked if it.checked else Qt.CheckState.Unchecked)
            self.list.addItem(row)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Server"))
        self.server_box = QComboBox()
        for s in servers:
            self.server_box.addItem(s.name)
        row.addWidget(self.server_box, 1)
        lay.addLayout(row)
        self.status = QLabel("" if items else "Nothing to send: run an engine or add a mask first.")
        if not servers:
            self.status.setText("No server configured: Edit ▸ PACS Servers… adds one.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        bottom = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.hide()
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_or_close)
        self.send_button.setEnabled(bool(items and servers))
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.send_button)
        bottom.addWidget(self.cancel_button)
        lay.addLayout(bottom)

    def chosen(self) -> list[Outgoing]:
        return [it for n, it in enumerate(self.items)
                if self.list.item(n).checkState() == Qt.CheckState.Checked]

    def set_checked(self, labels: set[str]) -> None:
        """Tick exactly the items whose labels start with one of ``labels``' entries."""
        for n, it in enumerate(self.items):
            on = any(it.label.startswith(lab) for lab in labels)
            self.list.item(n).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def send(self) -> bool:
        """Build the ticked objects and send them to the chosen server, in the background."""
        chosen = self.chosen()
        server = next((s for s in self.servers if s.name == self.server_box.currentText()), None)
        if not chosen or server is None or self._worker is not None:
            return False

        def task(progress, cancelled) -> int:  # noqa: ANN001
            datasets = []
            for n, it in enumerate(chosen):
                if cancelled():
                    from viewer.net import TransferCancelled

                    raise TransferCancelled("Sending cancelled before anything was sent")
                datasets.append(it.build())
                progress(n + 1, 2 * len(chosen))
            return connect(server).store(datasets, lambda d, t: progress(len(chosen) + d, len(chosen) + t),
                                         cancelled)

        self._worker = worker = NetWorker(task)
        worker.progress.connect(self._on_progress)  # bound methods: delivered on the GUI thread
        worker.finished.connect(self._sent)
        worker.failed.connect(self._not_sent)
        worker.cancelled.connect(self._not_sent)
        self._server = server
        self.progress.setRange(0, 0)
        self.progress.show()
        self.send_button.setEnabled(False)
        self.status.setText(f"Sending to {server.name}…")
        worker.start("lucent-net-send")
        return True

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _sent(self, n: object) -> None:
        n = int(n)
        self._done(f"Sent {n} object{'s' if n != 1 else ''} to {self._server.describe()}.", n)

    def _not_sent(self, text: str) -> None:
        self._done(text, 0)

    def _done(self, text: str, n: int) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.sent += n
        self.progress.hide()
        self.status.setText(text)
        self.send_button.setEnabled(True)
        self.cancel_button.setText("Close")

    def is_sending(self) -> bool:
        return self._worker is not None

    def cancel_or_close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def reject(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        super().reject()


def send_results_dialog(window) -> SendResultsDialog | None:  # noqa: ANN001 - MainWindow
    """Build the dialog for ``window``'s open study (None, with a message, when there is no study)."""
    from app.settings import servers

    if window.document is None:
        window.show_error("Open a DICOM study first: results are sent into the study they were computed on.")
        return None
    title, findings = findings_of(getattr(getattr(window, "engines", None), "results_panel", None))
    items = outgoing_objects(window.document, findings, title)
    return SendResultsDialog(items, servers(window.settings), window)
