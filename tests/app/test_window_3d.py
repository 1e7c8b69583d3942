"""The main window's 3D view, rendering on its own thread, shows frames of a real study in the MPR layout.

tests/app/test_under_xvfb.py runs this file in a real X window too (the render thread's EGL context beside Qt's
own X connection).
"""

from __future__ import annotations

from viewer.views.view3d import View3D


def test_the_mpr_3d_view_shows_the_brain(window, qtbot, shared_data):
    assert window.open_paths([shared_data / "brain_mri/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz"])
    window.resize(1280, 1000)
    qtbot.waitUntil(lambda: window.study_view.findChild(View3D) is not None, timeout=10_000)
    view = window.study_view.findChild(View3D)
    assert view.threaded
    qtbot.wait(3000)  # the event loop runs (no Python polling) while the first frames render
    qtbot.waitUntil(lambda: view._canvas._image is not None, timeout=60_000)
    assert view.preset_box.currentText() == "mr" and view.render_thread.scene.volume_mode in ("cpu", "gpu")
    frame = view._canvas._frame
    assert frame is not None and frame.std() > 5  # the brain, not a black frame
