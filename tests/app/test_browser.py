"""The study browser panel: filters, thumbnails, hidden names, double-click to open, import with Cancel."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from app.browser import StudyBrowser
from app.browser.models import HIDDEN_NAME
from bench.bench_index import write_tree
from viewer.io.index import StudyIndex
from viewer.io.index import store as index_store


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("tree"), 200, corrupt_every=1000, n_duplicates=0)


@pytest.fixture
def db(tree, tmp_path):
    path = tmp_path / "db.sqlite"
    with StudyIndex(path) as index:
        index.import_paths([tree.root])
    return path


@pytest.fixture
def opened():
    return []


@pytest.fixture
def browser(qtbot, db, tmp_path, opened):
    b = StudyBrowser(db, open_series=lambda paths, uid: opened.append((paths, uid)),
                     thumbnail_dir=tmp_path / "thumbs")
    qtbot.addWidget(b)
    b.resize(900, 700)
    b.show()
    yield b
    b.shutdown()


def _cells(browser, column):
    m = browser.model
    return [m.data(m.index(r, column)) for r in range(m.rowCount())]


def test_lists_studies_with_columns(browser, tree):
    assert browser.model.rowCount() == tree.studies
    row = [browser.model.data(browser.model.index(0, c)) for c in range(7)]
    assert row[0].startswith(("Patient", "Müller")) and row[1].startswith("PID")
    assert len(row[2]) == 10 and row[2][4] == "-" and len(row[3]) == 10  # dates shown as YYYY-MM-DD
    assert row[6] == "2"


def test_filter_box_and_controls(browser, qtbot, tree):
    qtbot.keyClicks(browser.filter_edit, "patient0001")  # typed: refreshes after a short pause
    qtbot.waitUntil(lambda: browser.model.rowCount() < tree.studies, timeout=2000)
    assert set(_cells(browser, 0)) == {"Patient0001, Test"}
    browser.set_filter(text="MÜLLER")
    assert set(_cells(browser, 0)) == {"Müller, Jörg"}
    browser.set_filter(text="brain")
    assert set(_cells(browser, 5)) == {"Brain MRI"}
    browser.set_filter(modality="PT")
    assert browser.model.rowCount() > 0 and all("PT" in m for m in _cells(browser, 4))
    browser.set_filter(date_from="2012-01-01", date_to="2013-12-31")
    dates = _cells(browser, 3)
    assert dates and all("2012-01-01" <= d <= "2013-12-31" for d in dates)
    browser.set_filter()
    assert browser.model.rowCount() == tree.studies


def test_thumbnails_appear(browser, qtbot):
    browser.select_study(browser.study_uids()[0])
    assert browser.series_list.count() == 2
    uids = [browser.series_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(2)]
    qtbot.waitUntil(lambda: all(browser.thumbnail_of(u) for u in uids), timeout=5000)


def test_hide_patient_names(browser, qtbot):
    names = _cells(browser, 0)
    assert HIDDEN_NAME not in names
    with qtbot.waitSignal(browser.hide_names_changed):
        browser.hide_names_box.click()
    assert set(_cells(browser, 0)) == {HIDDEN_NAME}
    texts = [browser.model.data(browser.model.index(r, c)) for r in range(browser.model.rowCount())
             for c in range(7)]
    assert not any("Patient0" in t or "Müller" in t for t in texts)
    browser.set_hide_names(False)
    assert _cells(browser, 0) == names


def test_double_click_opens_series_and_moves_study_first(browser, qtbot, db, opened):
    last = browser.study_uids()[-1]
    browser.select_study(last)
    item = browser.series_list.item(1)
    uid = item.data(Qt.ItemDataRole.UserRole)
    rect = browser.series_list.visualItemRect(item)
    qtbot.mouseClick(browser.series_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(browser.series_activated):  # Qt 6 item views need the press before the double click
        qtbot.mouseDClick(browser.series_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with StudyIndex(db) as index:
        expected = index.series_files(uid)
    assert opened == [(expected, uid)]
    assert len(expected) == 5 and all(p.endswith(".dcm") for p in expected)
    assert browser.study_uids()[0] == last  # recently opened first


def test_import_from_panel(qtbot, tmp_path, tree):
    b = StudyBrowser(tmp_path / "new.sqlite", thumbnail_dir=tmp_path / "thumbs")
    qtbot.addWidget(b)
    try:
        assert b.model.rowCount() == 0
        with qtbot.waitSignal(b.import_finished, timeout=20000) as sig:
            assert b.import_paths([tree.root])
            assert b.progress.isVisibleTo(b) and b.cancel_button.isVisibleTo(b)
        report = sig.args[0]
        assert not report.cancelled and report.indexed == tree.dicom
        assert b.model.rowCount() == tree.studies
        assert not b.progress.isVisibleTo(b) and "Imported" in b.status.text()
    finally:
        b.shutdown()


def test_cancel_stops_import_within_a_second(qtbot, tmp_path, tree, monkeypatch):
    slow_read = index_store.read_entry

    def read(stat):
        time.sleep(0.02)  # a slow disk: the whole import would take several seconds
        return slow_read(stat)

    monkeypatch.setattr(index_store, "read_entry", read)
    b = StudyBrowser(tmp_path / "new.sqlite", thumbnail_dir=tmp_path / "thumbs")
    qtbot.addWidget(b)
    try:
        b.import_paths([tree.root])
        qtbot.waitUntil(lambda: b.progress.maximum() > 0, timeout=10000)  # walk done, reading
        t = time.perf_counter()
        with qtbot.waitSignal(b.import_finished, timeout=3000) as sig:
            qtbot.mouseClick(b.cancel_button, Qt.MouseButton.LeftButton)
        assert time.perf_counter() - t < 1.0
        report = sig.args[0]
        assert report.cancelled and report.indexed < tree.dicom
        assert not b.is_importing()
    finally:
        b.shutdown()
