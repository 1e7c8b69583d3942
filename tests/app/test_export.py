"""Screenshot export: legend footer with layers and provenance, 2× scale, no patient identifiers unless asked;
layer export as NIfTI gives back the same voxels at the same patient positions."""

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from app.screenshot import ExportOptions, legend_lines
from viewer.io import load_volume
from viewer.model import HeatmapLayer, Volume


def test_screenshot_scale_legend_and_privacy(demo_window, tmp_path):
    doc = demo_window.document
    doc.base.metadata.update(patient_name="Doe^Jane", patient_id="PID-4711", patient_birth_date="19700101")
    doc.add_layer(HeatmapLayer(name="engine · saliency", volume=Volume(np.zeros((5, 64, 64), np.float32),
                                                                       doc.base.affine @ np.diag([8, 8, 4, 1.0])),
                               legend="Grad-CAM", provenance="toy, weights sha256 0123abcd"))
    lines = legend_lines(doc)
    assert any("engine · saliency — Grad-CAM; 0–1; toy, weights sha256 0123abcd" in line for line in lines)
    assert not any("Doe" in line or "PID-4711" in line for line in lines)
    assert any("PID-4711" in line for line in legend_lines(doc, include_patient=True))

    one, two = tmp_path / "1x.png", tmp_path / "2x.png"
    demo_window.save_screenshot(one, ExportOptions(resolution="1x"))
    demo_window.save_screenshot(two, ExportOptions(resolution="2x", include_patient=False))
    w1, h1 = Image.open(one).size
    w2, h2 = Image.open(two).size
    assert (w2, h2) == (2 * w1, pytest.approx(2 * h1, abs=4))
    assert demo_window.study_view.width() == w1
    # no identifiers in the file's bytes either (PNG text chunks)
    for path in (one, two):
        data = path.read_bytes()
        assert b"Doe" not in data and b"PID-4711" not in data and b"19700101" not in data


def test_layer_export_round_trip(demo_window, tmp_path):
    doc = demo_window.document
    aff = doc.base.affine @ np.diag([8, 8, 4, 1.0])
    aff[:3, 3] += 3.0
    values = np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)
    layer = doc.add_layer(HeatmapLayer(name="heat", volume=Volume(values, aff)))
    out = tmp_path / "heat.nii.gz"
    demo_window.export_layer(layer, out)
    back = load_volume(out)
    # same voxel → same patient position, whatever row order the writer chose
    k, j, i = 2, 10, 20
    xyz = layer.volume.index_to_patient([i, j, k])
    bi, bj, bk = np.rint(back.patient_to_index(xyz)).astype(int)
    assert back.data3d[bk, bj, bi] == pytest.approx(values[k, j, i])
    assert nib.load(out).shape == (64, 64, 5)


def test_screenshot_paints_the_3d_frame(demo_window, qtbot, tmp_path, monkeypatch):
    """An interactive 3D view draws with OpenGL into a native window that a widget grab reads as black: the
    screenshot paints VTK's own frame there (offscreen tests use the canvas backend, so it stands in here)."""
    from viewer.views.view3d import View3D

    demo_window.on_layout_mpr()
    demo_window.study_view.ensure_3d()
    view = demo_window.study_view.findChild(View3D)
    assert view is not None
    qtbot.waitUntil(lambda: view.frame_widget.isVisible() and view.frame_widget.height() > 50, timeout=5000)
    magenta = np.zeros((8, 8, 3), np.uint8)
    magenta[..., 0] = magenta[..., 2] = 255
    monkeypatch.setattr(view, "interactive", True)
    monkeypatch.setattr(view, "render_to_array", lambda: magenta)
    out = tmp_path / "mpr.png"
    demo_window.save_screenshot(out, ExportOptions(resolution="1x"))
    target = view.frame_widget
    centre = target.mapTo(demo_window.study_view, target.rect().center())
    shot = Image.open(out).convert("RGB")
    assert shot.getpixel((centre.x(), centre.y())) == (255, 0, 255), (centre, shot.size)
