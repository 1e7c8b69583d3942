"""The main window as a user drives it: demo study, opening files, presets, errors, recent files."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.settings import Settings
from viewer.model.window_level import PRESETS


def test_demo_study_opens_in_mpr(window):
    assert window.open_demo()
    doc = window.document
    assert doc.base.modality == "CT" and doc.base.shape3d == (20, 512, 512)
    assert doc.base.array.dtype == np.int16
    assert set(window.study_view.views) == {"axial", "coronal", "sagittal"}
    assert window.settings.recent_files == []  # the demo is not a recent file


def test_presets_and_scrolling_change_the_document(window, qtbot):
    window.open_demo()
    window.actions_by_id["preset_lung"].trigger()
    assert window.document.base_layer.window == PRESETS["lung"]
    axial = window.study_view.views["axial"]
    s0 = axial.slice_index
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert axial.slice_index == min(s0 + 1, 19)
    qtbot.keyClick(axial, Qt.Key.Key_Home)
    assert axial.slice_index == 0
    # the other views follow the shared crosshair
    cor = window.study_view.views["coronal"]
    _, _, row = cor.crosshair_screen()
    assert round(row) == cor.mapping.index_to_screen(axial.document.crosshair_index())[2]


def test_bad_file_shows_message_and_keeps_study(window, tmp_path):
    window.open_demo()
    doc = window.document
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"DICM" * 10)
    assert not window.open_paths([bad])
    assert window.document is doc
    assert window.last_error and "\n" not in window.last_error


def test_open_nifti_by_drop_and_remember_it(window, shared_data):
    path = shared_data / "brain_mri/brats_2013_pat0002_1/T1c_subtrMeanDivStd.nii.gz"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    assert window.document.base.shape3d == (155, 240, 240)
    assert window.settings.recent_files == [str(path.resolve())]
    assert Settings(window.settings.path.parent).recent_files == [str(path.resolve())]


def test_2d_image_gets_single_native_view(window, shared_data):
    img = sorted((shared_data / "dermoscopy/images").glob("*.jpg"))[0]
    assert window.open_paths([img])
    assert list(window.study_view.views) == ["native"]
    assert window.document.base.rgb


def test_readout_under_mouse(window, qtbot):
    window.open_demo()
    axial = window.study_view.views["axial"]
    text = axial.readout_at_scene(axial.scene_of_screen(256, 256))
    assert "mm" in text and text.count("[") == 1
    assert axial.readout_at_scene(QPointF(-1000, -1000)) == ""


def test_compare_two_engine_results_then_back_to_mpr(window):
    from viewer.model import HeatmapLayer, Volume
    from viewer.views.compare_view import CompareView

    window.open_demo()
    doc = window.document
    window.on_compare()  # no overlays yet: a message, nothing changes
    assert "two overlay" in window.last_error
    for name in ("engine A · saliency", "engine B · saliency"):
        doc.add_layer(HeatmapLayer(name=name, volume=Volume(np.zeros((5, 64, 64), np.float32),
                                                            doc.base.affine @ np.diag([8, 8, 4, 1.0]))))
    window.compare_layers(window.overlay_layers())
    assert isinstance(window.study_view, CompareView) and len(window.study_view.viewports) == 2
    window.actions_by_id["layout_mpr"].trigger()
    assert set(window.study_view.views) == {"axial", "coronal", "sagittal"}
