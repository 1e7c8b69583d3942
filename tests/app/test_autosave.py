"""Autosave: work on a study is written shortly after each change and offered back on reopening."""

import numpy as np

from app.main_window import MainWindow
from app.settings import Settings
from viewer.model import HeatmapLayer, Volume
from viewer.model.annotations import Annotation


def test_autosave_and_restore(qtbot, tmp_path, shared_data):
    path = shared_data / "brain_mri/brats_2013_pat0005_1/Flair_subtrMeanDivStd.nii.gz"
    win = MainWindow(Settings())
    qtbot.addWidget(win)
    assert win.open_paths([path])
    doc = win.document
    doc.annotations.append(Annotation("text", "axial", [doc.crosshair], text="oedema"))
    heat = Volume(np.random.default_rng(0).random((10, 12, 12)).astype(np.float32),
                  doc.base.affine @ np.diag([20, 20, 15.5, 1]))
    doc.add_layer(HeatmapLayer(name="query · oedema", volume=heat))
    saved = win.autosaver.path
    qtbot.waitUntil(saved.exists, timeout=5000)
    win.close()

    # a new session (as after a crash): reopening the study offers the work back
    win2 = MainWindow(Settings())
    qtbot.addWidget(win2)
    asked = []
    win2.ask_restore = lambda q: asked.append(q) or True
    assert win2.open_paths([path])
    assert asked and "1 layer(s) and 1 annotation(s)" in asked[0]
    assert [la.name for la in win2.document.layers][1:] == ["query · oedema"]
    assert win2.document.annotations[0].text == "oedema"
    np.testing.assert_allclose(win2.document.layers[1].volume.affine, heat.affine, atol=1e-4)


def test_declining_restore_opens_plain_study(qtbot, tmp_path, shared_data):
    path = shared_data / "brain_mri/brats_2013_pat0005_1/T1c_subtrMeanDivStd.nii.gz"
    win = MainWindow(Settings())
    qtbot.addWidget(win)
    win.open_paths([path])
    win.document.annotations.append(Annotation("text", "axial", [win.document.crosshair], text="x"))
    win.autosaver.save_now()
    win2 = MainWindow(Settings())
    qtbot.addWidget(win2)
    win2.ask_restore = lambda q: False
    assert win2.open_paths([path])
    assert len(win2.document.annotations) == 0


def test_workspace_keeps_zoom_and_3d_camera(window, qtbot, tmp_path):
    window.open_demo()
    view = window.study_view
    view.ensure_3d()
    view.views["axial"].viewbox.setRange(xRange=(100, 200), yRange=(150, 250), padding=0)
    qtbot.wait(20)  # let the locked aspect ratio settle the range
    view.slot_3d.set_camera("L")
    qtbot.waitUntil(lambda: view.slot_3d.scene.camera_name == "L", timeout=10_000)  # the 3D view's own thread
    cam = view.slot_3d.scene.camera_state()
    saved = view.views["axial"].viewbox.viewRange()  # as the locked aspect ratio made it
    out = tmp_path / "ws.lucent"
    window.save_workspace(out)
    view.reset_zoom()
    view.slot_3d.set_camera("A")
    assert window.open_paths([out])
    restored = window.study_view
    got = restored.views["axial"].viewbox.viewRange()
    assert np.allclose(got, saved, atol=1.0), (got, saved)
    qtbot.waitUntil(lambda: np.allclose(restored.slot_3d.scene.camera_state().get("position", np.nan),
                                         cam["position"]), timeout=10_000)


def test_debounced_autosave_writes_off_the_gui_thread(qtbot, shared_data, monkeypatch):
    """A slow write (big engine layers) never blocks the GUI thread; save_now waits for it."""
    import threading
    import time

    import app.autosave as autosave

    path = shared_data / "brain_mri/brats_2013_pat0005_1/Flair_subtrMeanDivStd.nii.gz"
    win = MainWindow(Settings())
    qtbot.addWidget(win)
    assert win.open_paths([path])
    writers = []
    real = autosave.write_snapshot

    def slow_write(snap, target):
        writers.append(threading.current_thread() is threading.main_thread())
        time.sleep(1.0)
        return real(snap, target)

    monkeypatch.setattr(autosave, "write_snapshot", slow_write)
    doc = win.document
    doc.annotations.append(Annotation("text", "axial", [doc.crosshair], text="first"))
    t0 = time.perf_counter()
    win.autosaver.save_in_background()
    assert time.perf_counter() - t0 < 0.5  # returned at once: the write runs on the autosave thread
    doc.annotations.append(Annotation("text", "axial", [doc.crosshair], text="second"))  # edits go on
    win.autosaver.save_now()  # waits for both writes, in order
    assert writers == [False, False]
    from viewer.io.workspace import read_workspace_state

    state = read_workspace_state(win.autosaver.path)
    assert [a["text"] for a in state["annotations"]] == ["first", "second"]
    win.close()
