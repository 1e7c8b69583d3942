"""Drawing annotations in the demo_window: tools, labels with measurements, undo/redo, delete on slice."""

import numpy as np
import pytest


def test_ruler_drawn_in_axial_is_measured_and_undoable(demo_window):
    demo_window.actions_by_id["tool_ruler"].trigger()
    axial = demo_window.study_view.views["axial"]
    assert axial.tool == "ruler"
    p0, p1 = axial.scene_of_screen(100, 100), axial.scene_of_screen(200, 100)
    axial.draw_annotation("ruler", [p0, p1])
    doc = demo_window.document
    assert len(doc.annotations) == 1
    length = float(np.linalg.norm(doc.annotations[0].points[1] - doc.annotations[0].points[0]))
    assert length == pytest.approx(100 * doc.base.spacing[0], rel=1e-6)
    labels = [it for it in axial.annotation_items.items if hasattr(it, "textItem")]
    assert labels and labels[0].textItem.toPlainText() == f"{length:.1f} mm"
    # not on other slices, not in other planes
    axial.scroll(1)
    assert axial.annotation_items.items == []
    assert demo_window.study_view.views["coronal"].annotation_items.items == []
    demo_window.actions_by_id["undo"].trigger()
    assert len(doc.annotations) == 0
    demo_window.actions_by_id["redo"].trigger()
    assert len(doc.annotations) == 1


def test_text_needs_a_label_and_ellipse_shows_stats(demo_window, monkeypatch):
    axial = demo_window.study_view.views["axial"]
    monkeypatch.setattr(demo_window, "ask_text", lambda title: None)  # user cancels
    axial.draw_annotation("text", [axial.scene_of_screen(50, 50)])
    assert len(demo_window.document.annotations) == 0
    monkeypatch.setattr(demo_window, "ask_text", lambda title: "liver lesion")
    axial.draw_annotation("text", [axial.scene_of_screen(50, 50)])
    assert demo_window.document.annotations[0].text == "liver lesion"
    axial.draw_annotation("ellipse", [axial.scene_of_screen(150, 200), axial.scene_of_screen(200, 250)])
    axial.draw_annotation("arrow", [axial.scene_of_screen(300, 100), axial.scene_of_screen(250, 150)])
    texts = [it.textItem.toPlainText() for it in axial.annotation_items.items if hasattr(it, "textItem")]
    assert any(t.startswith("mean ") and "mm²" in t for t in texts)
    axial.setFocus()
    demo_window.on_delete_annotations()
    assert len(demo_window.document.annotations) == 0
    demo_window.actions_by_id["undo"].trigger()
    assert len(demo_window.document.annotations) == 3


def test_ellipse_reports_heatmaps_under_it(demo_window):
    from viewer.model import HeatmapLayer, Volume

    doc = demo_window.document
    coarse = np.full((5, 64, 64), 0.25, np.float32)
    doc.add_layer(HeatmapLayer(name="query · liver", volume=Volume(coarse, doc.base.affine @ np.diag([8, 8, 4, 1.0])),
                               units="sim"))
    axial = demo_window.study_view.views["axial"]
    axial.draw_annotation("ellipse", [axial.scene_of_screen(150, 200), axial.scene_of_screen(200, 250)])
    texts = [it.textItem.toPlainText() for it in axial.annotation_items.items if hasattr(it, "textItem")]
    assert any("query · liver: 0.25 ± 0 sim" in t for t in texts), texts


def test_drag_a_ruler_end_and_relabel_text(demo_window, monkeypatch):
    axial = demo_window.study_view.views["axial"]
    axial.draw_annotation("ruler", [axial.scene_of_screen(100, 100), axial.scene_of_screen(200, 100)])
    ruler = demo_window.document.annotations[0]
    hit = axial.annotation_point_near(axial.scene_of_screen(201, 101))
    assert hit == (ruler, 1)
    assert axial.annotation_point_near(axial.scene_of_screen(150, 300)) is None
    moved = axial.moved_annotation(ruler, 1, axial.scene_of_screen(100, 250))
    axial.annotation_edited.emit(ruler, moved)
    new = demo_window.document.annotations[0]
    assert new is not ruler
    assert np.linalg.norm(new.points[1] - new.points[0]) == pytest.approx(150 * demo_window.document.base.spacing[1])
    demo_window.actions_by_id["undo"].trigger()
    assert demo_window.document.annotations[0] is ruler
    monkeypatch.setattr(demo_window, "ask_text", lambda title: "old")
    axial.draw_annotation("text", [axial.scene_of_screen(50, 50)])
    label = demo_window.document.annotations[1]
    monkeypatch.setattr(demo_window, "ask_text", lambda title: "new label")
    axial.annotation_text_requested.emit(label)
    assert demo_window.document.annotations[1].text == "new label"
