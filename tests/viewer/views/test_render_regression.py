"""Image regression: a synthetic study with a heatmap on a coarser, shifted grid and a label mask renders
like the stored reference (tolerance, not exact bytes). ``LUCENT_UPDATE_REFERENCE=1`` rewrites it after a
deliberate change — look at the new PNG before committing it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.model import Document, HeatmapLayer, LabelsLayer, Volume, WindowLevel

REFERENCE = Path(__file__).parent / "reference"


def synthetic_document() -> Document:
    k, j, i = np.mgrid[0:12, 0:48, 0:64]
    base = (400 * np.exp(-(((i - 32) / 18) ** 2 + ((j - 24) / 14) ** 2)) + 3 * i).astype(np.int16)
    affine = np.diag([0.8, 1.0, 3.0, 1.0])
    affine[:3, 3] = (-20, 10, 50)
    doc = Document(Volume(base, affine, "CT"))
    doc.base_layer.window = WindowLevel(500, 200)
    heat = np.zeros((6, 12, 16), np.float32)
    heat[3, 2:6, 3:8] = np.linspace(0.2, 1.0, 5)[None, :]
    heat_affine = affine @ np.diag([4.0, 4.0, 2.0, 1.0])
    heat_affine[:3, 3] = affine[:3, :3] @ np.array([1.5, 1.5, 0.5]) + affine[:3, 3]
    doc.add_layer(HeatmapLayer(name="heat", volume=Volume(heat, heat_affine), threshold=0.1, opacity=0.8))
    labels = np.zeros(base.shape, np.uint8)
    labels[6, 30:40, 40:56] = 2
    labels[6, 32:38, 44:52] = 4
    doc.add_layer(LabelsLayer(name="mask", volume=Volume(labels, affine), opacity=0.6))
    doc.crosshair = doc.base.index_to_patient([32, 24, 6])
    return doc


@pytest.mark.parametrize("plane", ["axial", "coronal"])
def test_overlay_rendering_matches_reference(qtbot, plane):
    from viewer.views.slice_view import SliceView

    view = SliceView(synthetic_document(), plane)
    qtbot.addWidget(view)
    view.resize(320, 240)
    view.show()
    qtbot.waitExposed(view)
    view.annotations.hide()  # text rendering varies with fonts; the regression is about pixels of images
    view.h_line.hide()
    view.v_line.hide()
    view.reset_zoom()
    qtbot.wait(20)
    qimg = view.graphics.grab().toImage().convertToFormat(view.graphics.grab().toImage().Format.Format_RGB888)
    got = np.frombuffer(qimg.constBits(), np.uint8).reshape(qimg.height(), qimg.bytesPerLine())[:, :qimg.width() * 3]
    got = got.reshape(qimg.height(), qimg.width(), 3)
    ref_path = REFERENCE / f"synthetic_{plane}.png"
    if os.environ.get("LUCENT_UPDATE_REFERENCE") or not ref_path.exists():
        Image.fromarray(got).save(ref_path)
        if not os.environ.get("LUCENT_UPDATE_REFERENCE"):
            pytest.fail(f"reference {ref_path.name} was missing and has been written: look at it, then rerun")
    ref = np.asarray(Image.open(ref_path).convert("RGB"))
    assert ref.shape == got.shape
    diff = np.abs(ref.astype(int) - got.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 40, (diff.mean(), np.percentile(diff, 99))


def test_scrolling_redraws_only_the_view_whose_slice_changes(qtbot, monkeypatch):
    """Scrolling the axial view moves the crosshair within the coronal and sagittal slices: only the axial view's
    layers are drawn again (three times fewer renders per step in MPR), and what the others show stays right."""
    from viewer.views import layer_items
    from viewer.views.study_view import StudyView

    doc = synthetic_document()
    view = StudyView(doc, layout="mpr", with_3d=False)
    qtbot.addWidget(view)
    rendered: list[str] = []
    real = layer_items.LayerImage._render
    monkeypatch.setattr(layer_items.LayerImage, "_render",
                        lambda self: rendered.append(self.mapping.plane) or real(self))
    coronal = view.views["coronal"]
    before = [li.item.image.copy() for li in coronal.layer_images]
    overlay_updates: list[str] = []
    for name in ("axial", "coronal"):  # the corner-text overlay: repainting it redraws the whole view under it
        monkeypatch.setattr(view.views[name].annotations, "update", lambda n=name: overlay_updates.append(n))
    view.views["axial"].scroll(1)
    assert rendered and set(rendered) == {"axial"}
    assert overlay_updates == ["axial"]  # its slice number changed; the coronal texts did not
    assert all(np.array_equal(li.item.image, b) for li, b in zip(coronal.layer_images, before, strict=True))
    view.views["coronal"].scroll(1)  # the coronal slice changes now
    assert "coronal" in rendered
