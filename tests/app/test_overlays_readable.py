"""Overlays a radiologist can read (issue 19), checked on the pixels the window draws.

A query engine whose map is a blob placed by the query text stands in for RadZero (fast and exact); the film
is a real chest radiograph. Each test looks at rendered pixels: the film under an overlay, one query layer
after three queries, compare panes for layers hidden in the list, the exported legend inside the image.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from engines import registry
from engines.base import Engine, EngineResult, Overlay
from viewer.model import HeatmapLayer, Volume
from viewer.model.colormaps import blend_over, heatmap_rgba
from viewer.model.presentation import HEATMAP_OPACITY, PERCEPTUAL

CROSSHAIR_RGB = (60, 200, 255)


class BlobQuery(Engine):
    """Answers a typed finding with a Gaussian blob (on a 4× coarser grid) placed by the text's CRC."""

    id: ClassVar[str] = "blobq"
    title: ClassVar[str] = "Blob query"
    paper: ClassVar[str] = "test fixture"
    modalities: ClassVar[tuple[str, ...]] = ("*",)
    dims: ClassVar[tuple[int, ...]] = (2,)
    takes_query: ClassVar[bool] = True
    outputs = ("similarity",)

    def run(self, volume, query=None, device="cpu", progress=lambda f, m="": None, cancelled=lambda: False):
        h, w = (n // 4 for n in volume.shape3d[1:])
        crc = zlib.crc32((query or "").encode())
        cy, cx = h * (0.3 + 0.4 * (crc % 97) / 96), w * (0.3 + 0.4 * (crc % 89) / 88)
        yy, xx = np.mgrid[0:h, 0:w]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.12 * w) ** 2)).astype(np.float32)
        affine = volume.affine @ np.diag([4.0, 4.0, 1.0, 1.0])
        affine[:3, 3] = volume.index_to_patient([1.5, 1.5, 0])  # coarse voxel centres over 4×4 blocks
        ov = Volume(blob, affine, volume.modality, {"query": query}, volume.spacing_known)
        return EngineResult(overlays=[Overlay(name=f"similarity · {query}", kind="similarity", volume=ov,
                                              value_range=(0.0, 1.0), colormap="jet", units="τ-scaled cosine",
                                              legend=f"“{query}” – grounding")])


@pytest.fixture
def cxr_window(window, shared_data, monkeypatch, qtbot):
    """The window on a 1024² chest radiograph, with the blob engine answering queries."""
    engine = BlobQuery()
    with registry.registered(engine):
        monkeypatch.setattr(type(window.engines), "query_engine", staticmethod(lambda doc: engine))
        assert window.open_paths([shared_data / "cxr/images/f8335316.png"])
        window.engines.set_document(window.document)
        window.results_dock.raise_()  # as after a first result: later results change no layout
        qtbot.wait(200)
        yield window


def ask(window, qtbot, text: str) -> None:
    bar = window.engines.query_bar
    bar.box.setEditText(text)
    bar.submit()
    qtbot.waitUntil(window.engines.runner.is_idle, timeout=20_000)
    qtbot.wait(20)


def view_pixels(view) -> np.ndarray:
    """The slice view's graphics as drawn, RGB uint8 (the corner texts and colour bars excluded)."""
    img = view.graphics.grab().toImage().convertToFormat(view.graphics.grab().toImage().Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : 3 * img.width()].reshape(img.height(), img.width(), 3).copy()


def colourful(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not grey (an overlay's colour), as a mask."""
    c = rgb.astype(int)
    return (c.max(-1) - c.min(-1)) > 30


def test_a_query_map_is_thresholded_translucent_and_perceptual_over_a_visible_film(cxr_window, qtbot):
    w = cxr_window
    view = w.study_view.primary
    ask(w, qtbot, "right pleural effusion")
    layer = w.document.layers[-1]
    assert isinstance(layer, HeatmapLayer) and layer.query == "right pleural effusion"
    assert layer.colormap in PERCEPTUAL and layer.opacity == pytest.approx(HEATMAP_OPACITY)
    assert layer.threshold == pytest.approx(0.5)  # no operating point from this engine: half the range
    shown = view_pixels(view)
    layer.visible = False
    film = view_pixels(view)  # the same view without the map
    layer.visible = True
    coloured = colourful(shown) & ~colourful(film)
    assert 0.005 < coloured.mean() < 0.5  # the blob above the threshold, not the whole film
    # under the colour the film is still there: its structure correlates with the plain film
    lum = lambda a: a.astype(float).mean(-1)  # noqa: E731
    r = np.corrcoef(lum(shown)[coloured], lum(film)[coloured])[0, 1]
    assert r > 0.6, r
    # below the threshold the film is untouched (away from the map's edge and the colour bar at the top right)
    from scipy.ndimage import binary_dilation

    h, w_ = film.shape[:2]
    far = ~binary_dilation(coloured, iterations=25)
    far[: h // 2, w_ // 2:] = False
    assert far.mean() > 0.3
    assert np.abs(shown[far].astype(int) - film[far].astype(int)).max() <= 2


def test_three_queries_make_one_query_layer_with_the_history_in_the_drop_down(cxr_window, qtbot):
    w = cxr_window
    n = len(w.document.layers)
    view = w.study_view.primary
    maps = []
    for q in ("right pleural effusion", "left lower lobe consolidation", "cardiomegaly"):
        ask(w, qtbot, q)
        maps.append(colourful(view_pixels(view)))
    layers = w.document.layers
    assert len(layers) == n + 1, [la.name for la in layers]
    layer = layers[-1]
    assert layer.query == "cardiomegaly" and layer.name.endswith("· cardiomegaly")
    assert [li.layer for li in view.layer_images if li.item.isVisible()] == [w.document.base_layer, layer]
    # the view shows the latest map only: each query moved the blob
    assert (maps[0] != maps[1]).mean() > 0.005 and (maps[1] != maps[2]).mean() > 0.005
    assert [cb.title for cb in view.annotations.colorbars] == [layer.legend]
    assert w.engines.query_bar.history[:3] == ["cardiomegaly", "left lower lobe consolidation",
                                                "right pleural effusion"]
    # the user's opacity survives the next query; picking a past query from the drop-down asks it again
    layer.opacity = 0.25
    w.engines.query_bar.box.activated.emit(2)  # as the drop-down does when the user clicks its third entry
    qtbot.waitUntil(w.engines.runner.is_idle, timeout=20_000)
    qtbot.waitUntil(lambda: layer.query == "right pleural effusion", timeout=5_000)
    assert layer.opacity == 0.25 and len(w.document.layers) == n + 1


def test_long_layer_names_keep_the_dock_width_and_are_elided(cxr_window, qtbot):
    w = cxr_window
    dock = w.layer_panel.parentWidget()
    qtbot.wait(50)
    before = dock.width(), w.study_view.width()
    long = "RadZero · similarity · " + "left lower lobe consolidation with air bronchograms " * 4
    w.document.add_layer(HeatmapLayer(name=long, volume=Volume(np.zeros((8, 8), np.float32))))
    w.engines.results_panel.show_scores("RadZero — “" + "a long query " * 12 + "”",
                                        {"an unusually long finding name " * 3: 0.999, "b": 0.1})
    w.results_dock.raise_()
    qtbot.wait(50)
    assert (dock.width(), w.study_view.width()) == before
    item = w.layer_panel.list.item(0)
    assert item.toolTip().startswith(long) and w.layer_panel.list.textElideMode() == Qt.TextElideMode.ElideMiddle


def test_results_table_shows_the_score_column_whole(cxr_window, qtbot):
    panel = cxr_window.engines.results_panel
    cxr_window.results_dock.raise_()
    panel.show_scores("scores", {"Consolidation with a long descriptive finding name": 0.999, "Nodule": 0.01})
    qtbot.wait(50)
    table = panel.table
    bar = table.cellWidget(0, 1)
    fm = bar.fontMetrics()
    assert table.columnWidth(1) >= fm.horizontalAdvance("100.0 %")
    assert table.columnViewportPosition(1) + table.columnWidth(1) <= table.viewport().width()
    assert panel.ranked_names()[0].startswith("Consolidation")


def two_hidden_maps(window):
    doc = window.document
    h, w = doc.base.shape3d[1:]
    layers = []
    for n, (cy, cx) in enumerate(((0.35, 0.3), (0.6, 0.7))):
        yy, xx = np.mgrid[0:h, 0:w]
        m = np.exp(-((yy / h - cy) ** 2 + (xx / w - cx) ** 2) / 0.01).astype(np.float32) * (n + 1)
        layers.append(doc.add_layer(HeatmapLayer(name=f"engine {'AB'[n]} · map", volume=Volume(m, doc.base.affine),
                                                 value_range=(0.0, float(n + 1)), threshold=0.2, units="a.u.",
                                                 legend=f"engine {'AB'[n]} – τ map", visible=False)))
    return layers


def test_compare_panes_show_layers_hidden_in_the_list_on_one_scale(cxr_window, qtbot):
    w = cxr_window
    a, b = two_hidden_maps(w)
    w.compare_layers([a, b])
    qtbot.wait(50)
    panes = w.study_view.viewports
    assert len(panes) == 2 and not a.visible and not b.visible
    for pane, layer in zip(panes, (a, b), strict=True):
        assert colourful(view_pixels(pane)).mean() > 0.002, layer.name  # the overlay is drawn
        assert [cb.title for cb in pane.annotations.colorbars] == [layer.legend]
    assert a.value_range == b.value_range == (0.0, 2.0)  # one legend scale: same units
    # the picker ticks what the user sees first; 3 panes lie in one row (no empty grey quadrant)
    from app.panels.pickers import compare_preselection
    from viewer.views.compare_view import pane_position

    c = HeatmapLayer(name="shown", volume=Volume(np.zeros((8, 8), np.float32)))
    assert compare_preselection([c, a, b]) == [c, a]
    assert [pane_position(n, 3) for n in range(3)] == [(0, 0), (0, 1), (0, 2)]
    assert [pane_position(n, 4) for n in range(4)] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_export_is_native_resolution_with_the_legend_inside_and_no_crosshair(cxr_window, qtbot, tmp_path):
    w = cxr_window
    a, b = two_hidden_maps(w)
    long = "right lower lobe consolidation – air bronchograms, τ = 0.07 " * 4
    a.name = f"RadZero · similarity · {long}"
    w.compare_layers([a, b])
    qtbot.wait(50)
    out = tmp_path / "shot.png"
    w.save_screenshot(out)  # defaults: native resolution, no crosshair, annotations on
    img = np.asarray(Image.open(out).convert("RGB"))
    # native: the film's 1024 columns get at least 1024 exported pixels (the window shows them on ~360)
    pane = w.study_view.viewports[0]
    (x0, x1), _ = pane.viewbox.viewRange()
    image_cols = w.document.base.shape3d[2]
    film_px = pane.width() * img.shape[1] / w.study_view.width() * image_cols / (x1 - x0)  # pixel size 1 mm
    assert img.shape[1] > 2 * w.study_view.width() and film_px >= 0.98 * image_cols, (img.shape, film_px)
    views_h = round(w.study_view.height() * img.shape[1] / w.study_view.width())
    footer = img[views_h + 2:]
    assert footer.shape[0] > 40
    background = np.array([20, 20, 20])
    # the legend's text stays inside: the right margin and the last rows are background
    margin = round(6 * img.shape[1] / w.study_view.width())
    assert (np.abs(footer[:, -margin:].astype(int) - background) <= 1).all()
    assert (np.abs(footer[-3:].astype(int) - background) <= 1).all()
    # the crosshair is not drawn by default; asked for, it is
    assert not (np.abs(img[:views_h].astype(int) - CROSSHAIR_RGB) <= 12).all(-1).any()
    from app.screenshot import ExportOptions

    w.save_screenshot(out, ExportOptions(resolution="1x", crosshair=True))
    with_cross = np.asarray(Image.open(out).convert("RGB"))
    assert with_cross.shape[1] == w.study_view.width()
    assert (np.abs(with_cross.astype(int) - CROSSHAIR_RGB) <= 60).all(-1).sum() > 50


def test_export_legend_lists_the_compare_panes_and_has_the_glyphs(cxr_window, qtbot):
    from PySide6.QtGui import QFontMetrics

    from app.screenshot import legend_lines
    from viewer.views.fonts import GLYPHS, legend_font

    w = cxr_window
    a, b = two_hidden_maps(w)
    w.compare_layers([a, b])
    lines = legend_lines(w.document, widget=w.study_view)
    assert any(line.startswith("pane 1: engine A · map — engine A – τ map; 0–2 a.u., shown ≥ 0.2") for line in lines)
    assert any(line.startswith("pane 2: engine B · map") for line in lines)
    fm = QFontMetrics(legend_font(13))
    assert all(fm.inFontUcs4(ord(c)) for c in GLYPHS + "".join(lines))


def test_infer_png_uses_the_screen_colours(cxr_window, qtbot, tmp_path):
    """`lucent infer` writes the same colours the screen draws: threshold, opacity and colour map."""
    from engines.cli import _grey_uint8, render_png, resample_to_grid

    w = cxr_window
    base = w.document.base
    result = BlobQuery().run(base, "cardiomegaly")
    ov = result.overlays[0]
    render_png(base, ov, tmp_path / "ov.png")
    png = np.asarray(Image.open(tmp_path / "ov.png").convert("RGB"))[: base.shape3d[1]]
    ask(w, qtbot, "cardiomegaly")
    layer = w.document.layers[-1]
    values = resample_to_grid(ov.volume, base, nearest=False)
    expected = blend_over(_grey_uint8(base), heatmap_rgba(values, layer.colormap, layer.value_range,
                                                          layer.threshold, layer.opacity))
    assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1
    inside = values >= layer.threshold
    assert inside.mean() > 0.005 and (png[~inside] == _grey_uint8(base)[~inside]).all()


def test_shortcuts_work_with_the_focus_in_the_query_box(cxr_window, qtbot, monkeypatch):
    """ctrl+E exports wherever the focus is. On X11 a line edit claims ctrl+E ("end of line"): run this under
    Xvfb with QT_QPA_PLATFORM=xcb to see that case (the offscreen platform has no such key binding)."""
    from app.panels.export_dialog import ExportDialog

    calls = []
    monkeypatch.setattr(ExportDialog, "exec", lambda self: calls.append(1) or QDialog.DialogCode.Rejected)
    cxr_window.activateWindow()  # key presses reach shortcuts only in the active window (xcb)
    qtbot.waitUntil(cxr_window.isActiveWindow, timeout=5000)
    edit = cxr_window.engines.query_bar.box.lineEdit()
    for target in (edit, cxr_window.study_view.primary, cxr_window.layer_panel.list):
        target.setFocus()
        qtbot.waitUntil(lambda t=target: t.hasFocus(), timeout=2000)
        n = len(calls)
        qtbot.keyClick(target, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        assert len(calls) == n + 1, target
    # typing a letter into the query box types it (the V and C commands stay out of the way)
    edit.setFocus()
    edit.clear()
    qtbot.keyClicks(edit, "vc")
    assert edit.text() == "vc"


def test_the_views_keep_their_size_while_a_job_runs_and_ends(cxr_window, qtbot):
    """The status bar shows progress and Cancel during a job: the views above it must not jump."""
    w = cxr_window
    before = w.study_view.size()
    w.engines.job_status.running(1, "Blob query", 0.5, "working", 0.3)
    qtbot.wait(50)
    during = w.study_view.size()
    w.engines.job_status.idle()
    qtbot.wait(50)
    assert before == during == w.study_view.size()


def test_a_reopened_workspace_keeps_its_query_layer(cxr_window, qtbot, tmp_path):
    w = cxr_window
    ask(w, qtbot, "cardiomegaly")
    out = tmp_path / "study.lucent"
    w.save_workspace(out)
    assert w.open_workspace(out)
    n = len(w.document.layers)
    assert w.document.layers[-1].query == "cardiomegaly"
    ask(w, qtbot, "right pleural effusion")
    assert len(w.document.layers) == n and w.document.layers[-1].query == "right pleural effusion"
