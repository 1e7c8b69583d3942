"""The study browser's Remote tab, the servers dialog and the send dialog, against the test Orthanc."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.browser import StudyBrowser
from app.panels.results_panel import ResultsPanel
from app.panels.send_dialog import SendResultsDialog, findings_of, outgoing_objects
from app.panels.servers_dialog import ServersDialog
from app.settings import Settings, servers, set_servers
from tests.net.orthanc import CT_PATIENT, PASSWORD, free_port
from viewer.io import load_volume
from viewer.io.index import StudyIndex
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer, LabelsLayer
from viewer.model.volume import Volume
from viewer.net import QueryFilter, connect


@pytest.fixture
def settings(dimse_config, web_config):
    s = Settings()
    set_servers(s, [dimse_config, web_config])
    return s


@pytest.fixture
def browser(qtbot, settings, library, opened):
    root, db = library
    b = StudyBrowser(db, open_series=lambda paths, uid: opened.append((paths, uid)), settings=settings,
                     library=root, thumbnail_dir=root.parent / "thumbs")
    qtbot.addWidget(b)
    b.resize(1000, 700)
    b.show()
    yield b
    b.shutdown()


@pytest.fixture
def opened():
    return []


def _idle(qtbot, remote) -> None:
    qtbot.waitUntil(lambda: not remote.is_busy(), timeout=30000)


def test_settings_file_never_holds_the_password(settings):
    text = settings.path.read_text()
    assert PASSWORD not in text and "Test DICOMweb" in text
    assert servers(settings)[1].secret == PASSWORD


@pytest.mark.parametrize("server", ["Test PACS", "Test DICOMweb"])
def test_search_retrieve_and_open(browser, qtbot, opened, library, server):
    remote = browser.remote
    assert remote is not None and browser.tabs.count() == 2
    remote.select_server(server)
    remote.set_query(name="lucent", modality="CT", date_from="2022-12-01")
    assert remote.search()
    _idle(qtbot, remote)
    assert [s.patient_id for s in remote.studies] == [CT_PATIENT[1]], remote.status.text()
    assert remote.table.item(0, 0).text() == "Lucent, Test"
    assert remote.table.item(0, 6).text() == "ACC-20221208"
    qtbot.waitUntil(lambda: remote.series_list.count() == 1, timeout=10000)
    with qtbot.waitSignal(remote.retrieved, timeout=30000):
        assert remote.retrieve_selected_study(open_after=True)
    assert "20 instances" in remote.status.text() and browser.status.text().startswith("Retrieved: ")
    # the study is in the library tab, selected, and it was opened with its 20 files
    assert browser.tabs.currentIndex() == 0 and browser.selected_study_uid() == remote.studies[0].uid
    (paths, _uid), = opened
    assert len(paths) == 20 and all(str(library[0]) in p for p in paths)


def test_cancel_keeps_nothing_indexed_then_retrieve_resumes(browser, qtbot, library):
    remote = browser.remote
    remote.select_server("Test PACS")
    remote.set_query(patient_id=CT_PATIENT[1])
    remote.search()
    _idle(qtbot, remote)
    remote._worker = None
    remote.retrieve(remote.studies[0])
    remote._worker.progress.connect(lambda done, total: done >= 2 and remote.cancel())
    _idle(qtbot, remote)
    assert "cancelled" in remote.status.text().lower() and "kept" in remote.status.text()
    with StudyIndex(library[1]) as index:
        assert index.studies() == []
    with qtbot.waitSignal(remote.retrieved, timeout=30000):
        remote.retrieve(remote.studies[0])
    assert remote.last_report.skipped >= 2 and remote.last_report.instances == 20
    assert "already here" in remote.status.text()


def test_server_down_and_rejected_are_shown_in_one_line(browser, qtbot, settings, dimse_config):
    down = dimse_config.__class__(**{**dimse_config.to_dict(), "name": "Down", "port": free_port()})
    rejected = dimse_config.__class__(**{**dimse_config.to_dict(), "name": "Wrong AE", "called_ae": "NOPE"})
    set_servers(settings, [*servers(settings), down, rejected])
    browser.remote.reload_servers()
    for name, words in (("Down", "does not answer"), ("Wrong AE", "rejected the association")):
        browser.remote.select_server(name)
        browser.remote.search()
        _idle(qtbot, browser.remote)
        assert words in browser.remote.status.text() and "\n" not in browser.remote.status.text()


def test_servers_dialog_edits_and_tests_a_server(qtbot, dimse_config):
    dlg = ServersDialog([])
    qtbot.addWidget(dlg)
    dlg.add(dimse_config)
    dlg.called_ae.setText("ORTHANC")
    dlg.test_current()
    qtbot.waitUntil(lambda: not dlg.is_testing(), timeout=20000)
    assert dlg.test_result.text().startswith("OK") and "C-ECHO" in dlg.test_result.text()
    dlg.add(dimse_config.__class__("Web", kind="dicomweb", url="https://x/dicom-web", auth="bearer"))
    dlg.secret.setText("s3cret")
    dlg.name.setText("")
    assert any("needs a name" in p for p in dlg.problems())
    dlg.name.setText("Web")
    saved = dlg.servers()
    assert [s.name for s in saved] == [dimse_config.name, "Web"] and saved[1].secret == "s3cret"
    assert "s3cret" not in json.dumps([s.to_dict() for s in saved])


def test_send_dialog_sends_mask_map_and_findings(qtbot, ct_files, web_config, orthanc):
    base = load_volume(ct_files[0].parent)
    doc = Document(base, name="CT", source=str(ct_files[0].parent))
    labels = np.zeros(base.shape3d, np.uint8)
    labels[8:12, 200:260, 200:260] = 1
    doc.add_layer(LabelsLayer(name="toy mask", volume=Volume(labels, base.affine.copy(), {})))
    doc.add_layer(HeatmapLayer(name="toy map", volume=Volume(np.random.default_rng(0).random(base.shape3d,
                                                                                             np.float32),
                                                             base.affine.copy(), {})))
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.show_scores("toy engine · CT", {"Lesion": 0.75, "Nothing": 0.25})
    title, findings = findings_of(panel)
    assert findings == {"Lesion": 0.75, "Nothing": 0.25}
    items = outgoing_objects(doc, findings, title)
    dlg = SendResultsDialog(items, [web_config])
    qtbot.addWidget(dlg)
    assert [it.label.split(":")[1].strip() for it in dlg.chosen()] == [
        "DICOM-SEG", "parametric map", "structured report (TID 1500)"]
    assert dlg.send()
    qtbot.waitUntil(lambda: not dlg.is_sending(), timeout=60000)
    assert dlg.status.text().startswith("Sent 3 objects"), dlg.status.text()
    web = connect(web_config)
    (study,) = web.find_studies(QueryFilter(patient_id=CT_PATIENT[1]))
    new = [s for s in web.find_series(study.uid) if s.modality in ("SEG", "SR") or s.description == "toy map"]
    try:
        assert sorted(s.modality for s in new) == ["OT", "SEG", "SR"]  # a parametric map is OT
    finally:
        for s in new:
            orthanc.delete_series(s.uid)


def test_main_window_offers_servers_remote_tab_and_send(qtbot, monkeypatch):
    from app.main_window import MainWindow

    win = MainWindow(Settings())
    qtbot.addWidget(win)
    try:
        assert win.browser.remote is not None and win.browser.tabs.tabText(1) == "Remote (PACS)"
        assert {"servers", "send_results"} <= set(win.actions_by_id)
        shown = []
        monkeypatch.setattr(win, "show_error", shown.append)
        win.actions_by_id["send_results"].trigger()  # no study open: says so instead of sending
        assert shown and "Open a DICOM study first" in shown[0]
    finally:
        win.engines.runner.shutdown()
