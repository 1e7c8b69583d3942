"""Layer panel: controls change the layers (and so the views); delete is undoable."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack

from app.panels.layer_controls import HeatmapControls, ImageControls, LabelsControls
from app.panels.layer_panel import LayerPanel
from viewer.model import Document, HeatmapLayer, LabelsLayer, Volume
from viewer.views.study_view import StudyView


@pytest.fixture
def doc():
    rng = np.random.default_rng(0)
    d = Document(Volume(rng.integers(0, 100, (8, 32, 32)).astype(np.int16), np.diag([1, 1, 2, 1.0])), name="ct")
    heat = Volume(rng.random((4, 16, 16)).astype(np.float32), np.diag([2, 2, 4, 1.0]))
    d.add_layer(HeatmapLayer(name="saliency", volume=heat, legend="saliency"))
    d.add_layer(LabelsLayer(name="mask", volume=Volume((rng.random((8, 32, 32)) > 0.7).astype(np.uint8),
                                                       np.diag([1, 1, 2, 1.0]))))
    return d


@pytest.fixture
def panel(qtbot, doc):
    stack = QUndoStack()
    p = LayerPanel(stack)
    p.undo_stack_ref = stack
    qtbot.addWidget(p)
    p.set_document(doc)
    return p


def test_lists_layers_top_first(panel):
    names = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert names == ["mask", "saliency", "ct"]


def test_controls_change_the_selected_layer(panel, doc):
    panel.list.setCurrentRow(1)  # saliency
    heat = doc.layers[1]
    c = panel.controls
    assert isinstance(c, HeatmapControls) and c.layer is heat
    c.opacity.setValue(30)
    assert heat.opacity == pytest.approx(0.3)
    c.colormap.setCurrentText("jet")
    assert heat.colormap == "jet"
    c.threshold_on.setChecked(True)
    c.threshold.setValue(0.4)
    assert heat.threshold == pytest.approx(0.4)
    c.high.setValue(0.8)
    assert heat.value_range == (0.0, 0.8)
    heat.threshold = 0.55  # changed elsewhere (a script, an engine): the controls follow
    assert c.threshold.value() == pytest.approx(0.55)
    panel.toggle_selected()
    assert not heat.visible
    assert panel.list.item(1).checkState() == Qt.CheckState.Unchecked


def test_outline_only_for_labels(panel, doc):
    panel.list.setCurrentRow(0)
    c = panel.controls
    assert isinstance(c, LabelsControls) and not hasattr(c, "low")  # a mask has no range or threshold
    assert panel.stack.currentWidget() is c
    c.outline.setChecked(True)
    assert doc.layers[2].outline
    panel.list.setCurrentRow(2)  # the image: its colour map, no outline
    assert isinstance(panel.controls, ImageControls) and panel.stack.currentWidget() is panel.controls
    assert not hasattr(panel.controls, "outline")


def test_delete_undo_redo_and_last_image_is_kept(panel, doc):
    panel.list.setCurrentRow(0)
    panel.delete_selected()
    assert [la.name for la in doc.layers] == ["ct", "saliency"]
    panel.undo_stack_ref.undo()
    assert [la.name for la in doc.layers] == ["ct", "saliency", "mask"]
    panel.undo_stack_ref.redo()
    panel.list.setCurrentRow(1)  # ct, the only image
    panel.delete_selected()
    assert [la.name for la in doc.layers] == ["ct", "saliency"]


def test_reorder_and_rename(panel, doc):
    panel.list.setCurrentRow(0)  # mask (top)
    panel.move_selected(-1)
    assert [la.name for la in doc.layers] == ["ct", "mask", "saliency"]
    item = panel.list.item(0)
    item.setText("renamed")
    assert doc.layers[2].name == "renamed"


def test_views_follow_layer_changes(qtbot, doc, panel):
    view = StudyView(doc, layout="single")
    qtbot.addWidget(view)
    axial = view.views["axial"]
    item = axial.layer_images[1].item
    panel.list.setCurrentRow(1)
    panel.controls.opacity.setValue(20)
    assert item.opacity() == pytest.approx(0.2)
    assert [cb.title for cb in axial.annotations.colorbars] == ["saliency"]
    panel.toggle_selected()
    assert not item.isVisible() and axial.annotations.colorbars == []


def test_compare_view_links_viewports_and_splits_overlays(qtbot, doc):
    from viewer.views.compare_view import CompareView

    heat, mask = doc.layers[1], doc.layers[2]
    view = CompareView(doc, [[heat], [mask]])
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.show()
    left, right = view.viewports
    shown = lambda v: [li.layer.name for li in v.layer_images if li.item.isVisible()]  # noqa: E731
    assert shown(left) == ["ct", "saliency"] and shown(right) == ["ct", "mask"]
    assert [cb.title for cb in left.annotations.colorbars] == ["saliency"] and right.annotations.colorbars == []
    left.scroll(2)
    assert right.slice_index == left.slice_index
    left.viewbox.setRange(xRange=(5, 15), yRange=(5, 15), padding=0)
    assert right.viewbox.viewRange()[0] == pytest.approx(left.viewbox.viewRange()[0])


def test_same_scale_for_all_heatmaps(panel, doc):
    from viewer.model import HeatmapLayer, Volume

    other = doc.add_layer(HeatmapLayer(name="engine B", volume=Volume(np.zeros((4, 16, 16), np.float32)),
                                       value_range=(0, 5), colormap="viridis"))
    panel.list.setCurrentRow(2)  # saliency (below engine B and mask)
    assert panel.selected_layer().name == "saliency"
    panel.controls.high.setValue(0.7)
    panel.controls.share_scale.click()
    assert other.value_range == (0.0, 0.7) and other.colormap == doc.layers[1].colormap
