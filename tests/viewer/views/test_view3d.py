"""3D view: patient-frame placement, camera presets, overlays, crosshair, clean exit, real brain data.

Orientation expectations (patient LPS frame: x → Left, y → Posterior, z → Superior):

* Camera "A" stands in front of the face, looking toward posterior with Superior up. Screen right is
  direction × up = (+y) × (+z) = +x, so **patient Left appears on screen right** (as when facing a person)
  and Superior at the top.
* Camera "L" stands at the patient's left, looking toward the right (−x) with Superior up. Screen right is
  (−x) × (+z) = +y, so **Posterior appears on screen right and Anterior on screen left**.

* Camera "S" looks down from above with Anterior up: screen right is (−z) × (−y) = −x, patient Right.

A bright sphere placed Left, Anterior and Superior of the centre therefore shows right-of-centre and high
for "A", left-of-centre and high for "L", left-of-centre and high for "S".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from viewer.model.document import Document
from viewer.model.layers import LabelsLayer
from viewer.model.volume import Volume

REPO = Path(__file__).resolve().parents[3]
SIZE = 240  # rendered frame size in pixels (small: CPU ray casting on 2 cores)


def rotation(ax: int, deg: float) -> np.ndarray:
    """3×3 rotation by ``deg`` about patient axis ``ax``."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    r = np.eye(3)
    a, b = [i for i in range(3) if i != ax]
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def oblique_affine(shape_kji: tuple[int, int, int], spacing_ijk: tuple[float, float, float],
                   centre: np.ndarray, mirror: bool = False) -> np.ndarray:
    """An oblique voxel → LPS affine whose central voxel sits at ``centre`` (optionally with a flipped i axis)."""
    direction = rotation(2, 25) @ rotation(0, 15)
    if mirror:
        direction = direction @ np.diag([-1.0, 1.0, 1.0])
    aff = np.eye(4)
    aff[:3, :3] = direction @ np.diag(spacing_ijk)
    mid = (np.array(shape_kji[::-1]) - 1) / 2
    aff[:3, 3] = centre - aff[:3, :3] @ mid
    return aff


def patient_grid(volume_shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Patient LPS mm of every voxel centre, ``[k, j, i, 3]`` float32."""
    nk, nj, ni = volume_shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(np.float32)
    return ijk @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)


CENTRE = np.array([12.0, -30.0, 40.0])            # volume centre, LPS mm
SPHERE = CENTRE + np.array([30.0, -30.0, 25.0])   # Left, Anterior, Superior of the centre
LABEL_AT = CENTRE + np.array([-30.0, -30.0, -20.0])  # Right, Anterior, Inferior


def phantom(mirror: bool = False) -> Volume:
    """Oblique CT phantom: a 70 mm soft-tissue ball (40 HU) around CENTRE, a 12 mm bone sphere (1000 HU) at SPHERE."""
    shape = (80, 88, 96)
    aff = oblique_affine(shape, (1.9, 1.9, 2.1), CENTRE, mirror)
    xyz = patient_grid(shape, aff)
    a = np.full(shape, -1000, np.int16)
    a[np.linalg.norm(xyz - CENTRE.astype(np.float32), axis=-1) < 70] = 40
    a[np.linalg.norm(xyz - SPHERE.astype(np.float32), axis=-1) < 12] = 1000
    return Volume(a, aff, modality="CT")


def label_volume() -> Volume:
    """Axis-aligned labels on their own coarser grid: a 14 mm ball of label 3 (blue) at LABEL_AT."""
    shape = (40, 40, 40)
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = CENTRE - 4.0 * 19.5
    xyz = patient_grid(shape, aff)
    a = np.zeros(shape, np.uint8)
    a[np.linalg.norm(xyz - LABEL_AT.astype(np.float32), axis=-1) < 14] = 3
    return Volume(a, aff, modality="SEG")


def bright_centroid(frame: np.ndarray) -> tuple[float, float]:
    """(row, col) centroid of the brightest pixels (the bone sphere in the soft-tissue preset)."""
    grey = frame.min(axis=2).astype(int)
    assert grey.max() > 120, "the bright sphere is not in the frame"
    mask = grey >= 0.7 * grey.max()
    assert mask.sum() > 20, "the bright sphere is not in the frame"
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


def blue_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels in the hue of label 3 (BraTS blue, 60, 120, 255) however shaded; not the cyan crosshair."""
    f = frame.astype(float)
    return (f[..., 2] > 90) & (f[..., 0] < 0.5 * f[..., 2]) & (f[..., 1] < 0.65 * f[..., 2])


@pytest.fixture
def make_view(qtbot):
    from viewer.views.view3d import View3D

    def make(document: Document, **kw) -> View3D:
        kw.setdefault("threaded", False)  # these tests look inside the scene: render on the test's thread
        view = View3D(document, **kw)
        qtbot.addWidget(view)
        view.resize(SIZE, SIZE + view.controls.sizeHint().height())  # the frame below the control strip
        view.show()
        qtbot.waitExposed(view)
        return view

    return make


def test_offscreen_backend_on_offscreen_platform(make_view):
    view = make_view(Document(phantom()), interactive=True)
    assert not view.interactive  # QVTK cannot draw on the offscreen platform: fall back, do not crash
    frame = view.render_to_array()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[:2] == (SIZE, SIZE)
    assert frame.std() > 5, "blank frame"
    assert view.preset == "ct_bone"


@pytest.mark.parametrize("mirror", [False, True])
def test_volume_sits_in_patient_frame(make_view, mirror):
    """The volume prop's world bounds equal the affine's voxel-centre bounds, oblique or mirrored."""
    from viewer.views.vtk_grid import patient_bounds

    vol = phantom(mirror)
    view = make_view(Document(vol), interactive=False)
    got = np.array(view.scene.volume_prop.GetBounds())
    want = np.array(patient_bounds(vol))
    # VTK bounds the transformed box; the box's corners are the voxel-centre corners
    assert np.allclose(got, want, atol=0.6), (got, want)


def test_sphere_side_for_cameras_a_and_l(make_view):
    """Bone sphere Left-Anterior-Superior: right and high for "A"; left (anterior) and high for "L"."""
    view = make_view(Document(phantom()), interactive=False)
    view.set_preset("ct_soft_tissue")
    half = SIZE / 2
    view.set_camera("A")
    row, col = bright_centroid(view.render_to_array())
    assert col > half + 10 and row < half - 5, (row, col)
    view.set_camera("L")
    row, col = bright_centroid(view.render_to_array())
    assert col < half - 10 and row < half - 5, (row, col)
    view.set_camera("S")  # from above, anterior up: patient Left is on screen left
    row, col = bright_centroid(view.render_to_array())
    assert col < half - 10 and row < half - 10, (row, col)
    view.reset_camera()
    assert view.scene.camera_name == "A"


def test_label_surface_colour_and_visibility(make_view):
    doc = Document(phantom())
    view = make_view(doc, interactive=False)
    view.set_preset("ct_soft_tissue")  # frames the whole soft-tissue ball, label included
    view.set_camera("A")
    assert blue_mask(view.render_to_array()).sum() == 0
    layer = doc.add_layer(LabelsLayer(name="seg", volume=label_volume()))
    frame = view.render_to_array()
    blue = blue_mask(frame)
    assert blue.sum() > 30, "label 3 surface not drawn in its colour"
    cols = np.nonzero(blue)[1]
    assert cols.mean() < SIZE / 2, "label at patient Right must be on screen left from anterior"
    layer.visible = False
    assert blue_mask(view.render_to_array()).sum() == 0
    layer.visible = True
    assert blue_mask(view.render_to_array()).sum() > 30
    doc.layers.remove(layer)
    assert blue_mask(view.render_to_array()).sum() == 0
    assert view.scene.overlay_actors(layer) == []


def test_crosshair_marker_follows_document(make_view):
    doc = Document(phantom())
    view = make_view(doc, interactive=False)
    doc.base_layer.visible = False  # the base volume hides; only the marker (and nothing else) is drawn
    view.set_camera("A")

    def marker_col() -> float:
        f = view.render_to_array().astype(int)
        cyan = (f[..., 2] > 120) & (f[..., 1] > 80) & (f[..., 0] < f[..., 2] - 60)
        assert cyan.sum() > 5, "crosshair marker not visible"
        return float(np.nonzero(cyan)[1].mean())

    before = marker_col()
    doc.crosshair = doc.crosshair + np.array([40.0, 0.0, 0.0])  # toward patient Left
    assert np.allclose(view.scene.crosshair_actor.GetPosition(), doc.crosshair)
    assert marker_col() > before + 10  # Left is screen right from anterior
    view.show_planes(True)
    assert all(a.GetVisibility() for a in view.scene.plane_actors.values())
    axial = view.scene.plane_corners("axial")
    k = doc.crosshair_index()[2]
    assert np.allclose(doc.base.patient_to_index(axial)[:, 2], k)


def test_quick_frames_while_changing_then_one_full_frame(make_view, qtbot):
    """Scrolling a slice view (crosshair moves) or dragging an overlay's opacity slider redraws the 3D view in its
    quick interactive quality, so that a software renderer keeps up; when the changes stop, one full-quality
    frame follows. A single change on its own is drawn in full quality."""
    from viewer.views.view3d import SETTLE_MS

    doc = Document(phantom())
    layer = doc.add_layer(LabelsLayer(name="seg", volume=label_volume()))
    view = make_view(doc, interactive=False)

    def settle() -> None:
        qtbot.waitUntil(lambda: not view._pending and not view._settle.isActive(), timeout=5000)
        qtbot.wait(SETTLE_MS + 50)
        assert not view.scene._interacting

    def frame_after(change) -> bool:  # noqa: ANN001 - a no-argument callable
        with qtbot.waitSignal(view.frame_rendered, timeout=5000):
            change()
        return view.scene._interacting

    settle()
    for step in range(3):
        assert frame_after(lambda: setattr(doc, "crosshair", doc.crosshair + np.array([0.0, 0.0, 2.0]))), step
    with qtbot.waitSignal(view.frame_rendered, timeout=SETTLE_MS + 5000):
        pass
    assert not view.scene._interacting
    settle()
    quick = [frame_after(lambda v=v: setattr(layer, "opacity", v)) for v in (0.9, 0.8, 0.7)]
    assert quick == [False, True, True]
    view.render_to_array()  # a screenshot in the middle of quick frames is taken in full quality
    assert not view.scene._interacting and not view._settle.isActive()


def test_mouse_rotate_and_wheel_zoom(make_view, qtbot):
    from PySide6.QtCore import QPoint, Qt

    view = make_view(Document(phantom()), interactive=False)
    cam = view.scene.renderer.GetActiveCamera()
    pos0 = np.array(cam.GetPosition())
    canvas = view._canvas
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(140, 100))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(140, 100))
    pos1 = np.array(cam.GetPosition())
    assert not np.allclose(pos0, pos1)
    # dragging right turns the front to the right: the camera moves toward patient Right (−x)
    assert pos1[0] < pos0[0]
    dist = cam.GetDistance()
    view.scene.zoom(1.5)
    assert cam.GetDistance() < dist
    with qtbot.waitSignal(view.frame_rendered, timeout=5000):
        view.schedule_render()


def test_process_exits_cleanly(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        if not os.environ.get("DISPLAY"):
            os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
        import numpy as np
        from PySide6.QtWidgets import QApplication
        from viewer.model.document import Document
        from viewer.model.volume import Volume
        from viewer.views.view3d import View3D
        app = QApplication([])
        a = np.zeros((32, 32, 32), np.int16); a[10:20, 10:20, 10:20] = 1000
        view = View3D(Document(Volume(a, np.eye(4), modality="CT")))
        view.resize(120, 120); view.show()
        assert view.render_to_array().std() > 0
        view.close()
        app.processEvents()
        print("done")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done" in proc.stdout


def test_importing_view3d_does_not_import_vtk():
    code = ("import sys, viewer.views.view3d; "
            "bad = [m for m in sys.modules if m.startswith('vtkmodules')]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_real_brain_tumour_on_patient_right(make_view, shared_data):
    """BraTS FLAIR + OTMultiClass (tumour in the patient's RIGHT hemisphere) from anterior: screen left.

    Saves the frame to /tmp/view3d_brain.png for a look by eye (head upright, tumour on screen left).
    """
    nib = pytest.importorskip("nibabel")
    case = shared_data / "brain_mri" / "brats_2013_pat0001_1"
    if not case.is_dir():
        pytest.skip(f"{case} not found")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    flair = nib.load(case / "Flair_subtrMeanDivStd.nii.gz")
    seg = nib.load(case / "OTMultiClass.nii.gz")
    base = Volume(np.asarray(flair.dataobj).transpose(2, 1, 0), lps @ flair.affine, modality="MR")
    labels = Volume(np.asarray(seg.dataobj).astype(np.uint8).transpose(2, 1, 0), lps @ seg.affine)
    doc = Document(base)
    doc.add_layer(LabelsLayer(name="tumour", volume=labels))
    view = make_view(doc, interactive=False)
    view.resize(400, 400)
    view.set_camera("A")
    frame = view.render_to_array()
    from PIL import Image

    Image.fromarray(frame).save("/tmp/view3d_brain.png")
    f = frame.astype(int)
    yellow = (f[..., 0] > 140) & (f[..., 1] > 120) & (f[..., 2] < f[..., 1] - 60)  # label 4 (enhancing)
    assert yellow.sum() > 100
    cols = np.nonzero(yellow)[1]
    assert cols.mean() < frame.shape[1] / 2 - 20, "tumour (patient right) must be on screen left from anterior"
    assert view.preset == "mr"


def test_camera_buttons_and_preset_box(qtbot):
    """The strip above the 3D view drives the camera presets and the transfer function."""
    import numpy as np

    from viewer.model import Document, Volume
    from viewer.views.view3d import View3D

    data = np.zeros((20, 24, 28), np.int16)
    data[5:15, 6:18, 4:10] = 1000
    doc = Document(Volume(data, np.diag([1.0, 1.0, 2.0, 1.0]), "CT"))
    view = View3D(doc, interactive=False, threaded=False)
    qtbot.addWidget(view)
    view.resize(240, 240)
    view.show()
    before = view.render_to_array()
    view.camera_buttons["L"].click()
    after = view.render_to_array()
    assert not np.array_equal(before, after)
    assert view.preset_box.currentText() == view.preset == "ct_bone"
    view.preset_box.textActivated.emit("ct_soft_tissue")
    assert view.preset == "ct_soft_tissue"
    view.planes_box.setChecked(True)
    assert all(a.GetVisibility() for a in view.scene.plane_actors.values())
    view.shutdown()
