"""The 3D view renders on its own thread: the GUI thread never waits for a volume upload or a frame.

A frame made slow on purpose (0.6 s, as software OpenGL takes on a large volume) must not delay the GUI's
event loop by more than 100 ms while the user scrolls, rotates and changes layers; the same scenario on the
GUI thread (``threaded=False``) stalls it, which shows the measurement can see a stall.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.qt_timing import StallMeter
from tests.viewer.views.test_view3d import SIZE, blue_mask, label_volume, phantom
from viewer.model.document import Document
from viewer.model.layers import LabelsLayer
from viewer.model.volume import Volume

SLOW_FRAME_S = 0.6


@pytest.fixture
def make_view(qtbot):
    from viewer.views.view3d import View3D

    def make(document: Document, **kw) -> View3D:
        view = View3D(document, **kw)
        qtbot.addWidget(view)
        view.resize(SIZE, SIZE + view.controls.sizeHint().height())
        view.show()
        qtbot.waitExposed(view)
        return view

    return make


def test_threaded_view_draws_layers_where_they_belong(make_view, qtbot):
    doc = Document(phantom())
    view = make_view(doc)
    assert view.threaded and view.render_thread is not None
    view.set_preset("ct_soft_tissue")
    view.set_camera("A")
    assert blue_mask(view.render_to_array()).sum() == 0
    layer = doc.add_layer(LabelsLayer(name="seg", volume=label_volume()))
    frame = view.render_to_array()  # waits for the layer's surface, built on the render thread
    blue = blue_mask(frame)
    assert blue.sum() > 30 and np.nonzero(blue)[1].mean() < SIZE / 2  # patient Right on screen left
    layer.visible = False
    assert blue_mask(view.render_to_array()).sum() == 0
    # frames also arrive by themselves, and the preset box follows the scene
    with qtbot.waitSignal(view.frame_rendered, timeout=10_000):
        view.set_camera("L")
    assert view.preset_box.currentText() == "ct_soft_tissue" and view.scene.camera_name == "L"
    assert set(view.scene.camera_state()) == {"position", "focal_point", "view_up", "view_angle"}
    mr = make_view(Document(Volume(phantom().array, np.eye(4), modality="MR")))
    mr.render_to_array()
    assert mr.preset_box.currentText() == mr.preset == "mr"  # the box shows the scene's own preset


def stall_while_using(view, doc, qtbot, monkeypatch) -> tuple[float, int]:
    """Scroll, rotate and fade a layer for ~1.5 s with every frame taking SLOW_FRAME_S; (longest stall ms, frames)."""
    from viewer.views import vtk_scene

    real = vtk_scene.Scene3D.render_to_array

    def slow(self):  # noqa: ANN001
        time.sleep(SLOW_FRAME_S)  # as a software-OpenGL frame of a large volume
        return real(self)

    monkeypatch.setattr(vtk_scene.Scene3D, "render_to_array", slow)
    frames = []
    view.frame_rendered.connect(lambda: frames.append(1))
    layer = doc.layers[-1]
    meter = StallMeter()
    meter.start()
    t0 = time.monotonic()
    step = 0
    while time.monotonic() - t0 < 1.5:
        doc.crosshair = doc.crosshair + np.array([0.0, 0.0, 1.0])
        view.scene.rotate(3.0, 0.0)
        layer.opacity = 0.3 + 0.02 * (step % 10)
        step += 1
        qtbot.wait(30)
    longest = meter.stop()
    monkeypatch.setattr(vtk_scene.Scene3D, "render_to_array", real)
    return longest, len(frames)


def test_the_gui_never_waits_for_a_slow_3d_frame(make_view, qtbot, monkeypatch):
    doc = Document(phantom())
    doc.add_layer(LabelsLayer(name="seg", volume=label_volume()))
    view = make_view(doc)
    view.render_to_array()
    longest, frames = stall_while_using(view, doc, qtbot, monkeypatch)
    assert longest < 100, f"the GUI thread stalled {longest:.0f} ms"
    assert frames >= 1  # frames kept coming, coalesced


def test_the_same_on_the_gui_thread_stalls(make_view, qtbot, monkeypatch):
    doc = Document(phantom())
    doc.add_layer(LabelsLayer(name="seg", volume=label_volume()))
    view = make_view(doc, threaded=False)
    view.render_to_array()
    longest, _ = stall_while_using(view, doc, qtbot, monkeypatch)
    assert longest > 0.8 * SLOW_FRAME_S * 1000  # the meter sees a stall when there is one


def test_opening_a_large_volume_does_not_wait_for_the_upload(make_view, qtbot):
    a = np.zeros((200, 256, 256), np.int16)
    a[50:150, 60:200, 60:200] = 1000
    doc = Document(Volume(a, np.eye(4), modality="CT"))
    meter = StallMeter()
    meter.start()
    t = time.perf_counter()
    view = make_view(doc)
    built_ms = 1000 * (time.perf_counter() - t)
    with qtbot.waitSignal(view.frame_rendered, timeout=30_000):
        pass
    longest = meter.stop()
    assert built_ms < 300 and longest < 150, (built_ms, longest)
    view.close()  # closing releases the thread and its OpenGL context
    assert view.render_thread.closed


def green_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels in the hue of label 2 (BraTS green, 60, 200, 60) however shaded."""
    f = frame.astype(float)
    return (f[..., 1] > 90) & (f[..., 0] < 0.6 * f[..., 1]) & (f[..., 2] < 0.6 * f[..., 1])


def test_compare_panes_of_a_3d_study_have_linked_3d_views_of_their_own_overlays(qtbot):
    """Two masks, both hidden in the layer list: each compare pane's 3D view draws its own; turning one pane's
    camera turns the other's."""
    from viewer.views.compare_view import CompareView
    from viewer.views.view3d import same_camera

    doc = Document(phantom())
    blue = doc.add_layer(LabelsLayer(name="blue", volume=label_volume(), visible=False))
    green_vol = label_volume()
    green = doc.add_layer(LabelsLayer(name="green", volume=Volume(np.where(green_vol.array > 0, 2, 0).astype(
        np.uint8)[:, :, ::-1].copy(), green_vol.affine, "SEG"), visible=False))  # mirrored: patient Left
    view = CompareView(doc, [[blue], [green]])
    qtbot.addWidget(view)
    view.resize(2 * SIZE, 2 * SIZE)
    view.show()
    view.ensure_3d()
    left, right = view.views_3d
    for v in (left, right):
        v.set_preset("ct_soft_tissue")
    f_left, f_right = left.render_to_array(), right.render_to_array()
    assert blue_mask(f_left).sum() > 30 and green_mask(f_left).sum() == 0
    assert green_mask(f_right).sum() > 30 and blue_mask(f_right).sum() == 0
    left.set_camera("L")
    qtbot.waitUntil(lambda: left.scene.camera_name == "L" and same_camera(
        right.scene.camera_state(), left.scene.camera_state()), timeout=20_000)
    assert not same_camera(right.scene.camera_state(), {**right.scene.camera_state(), "position": [0, 0, 0]})
    view.detach()
    assert left.render_thread.closed and right.render_thread.closed

