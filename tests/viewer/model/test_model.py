"""Volume, layers, Document and window/level: the Qt-free model and its events."""

import numpy as np
import pytest

from viewer.model import Document, HeatmapLayer, ImageLayer, Volume, WindowLevel, auto_window
from viewer.model.colormaps import (
    blend_over,
    heatmap_rgba,
    indexed_lut,
    label_lut,
    labels_rgba,
    lut,
    to_indices,
)
from viewer.model.window_level import PRESETS, default_window


def test_volume_keeps_dtype_and_maps_index_to_patient():
    a = np.zeros((4, 5, 6), np.int16)
    aff = np.diag([0.5, 0.7, 2.0, 1.0])
    aff[:3, 3] = (10, 20, 30)
    v = Volume(a, aff, "CT")
    assert v.array.dtype == np.int16 and v.array is a
    np.testing.assert_allclose(v.index_to_patient([2, 3, 1]), [11, 22.1, 32])
    np.testing.assert_allclose(v.patient_to_index([11, 22.1, 32]), [2, 3, 1])
    assert v.spacing == pytest.approx((0.5, 0.7, 2.0))
    assert v.shape3d == (4, 5, 6) and not v.is_2d


def test_2d_and_rgb_volumes():
    g = Volume(np.zeros((5, 6), np.uint8))
    assert g.shape3d == (1, 5, 6) and g.is_2d and g.data3d.shape == (1, 5, 6)
    c = Volume(np.zeros((5, 6, 3), np.uint8), rgb=True)
    assert c.shape3d == (1, 5, 6) and c.data3d.shape == (1, 5, 6, 3)
    with pytest.raises(ValueError):
        Volume(np.zeros((5, 6, 7)), rgb=True)
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), np.zeros((4, 4)))


def test_value_range_ignores_nan():
    a = np.array([[np.nan, 1.0], [np.inf, -2.0]], np.float32)
    assert Volume(a).value_range() == (-2.0, 1.0)


def test_window_level_presets_and_auto():
    assert PRESETS["lung"].levels == (-1350, 150)
    assert WindowLevel.from_levels(-100, 300) == WindowLevel(400, 100)
    rng = np.random.default_rng(0)
    w = auto_window(rng.normal(100, 10, 100_000).astype(np.float32))
    assert 60 < w.levels[0] < 80 and 120 < w.levels[1] < 140
    assert default_window({"window_center": 40, "window_width": 400}, np.zeros(3)) == WindowLevel(400, 40)
    assert auto_window(np.full(10, np.nan)).width > 0
    # the read-out a radiologist sees: whole numbers for radiograph/CT windows, never "W 3e+04"
    assert str(WindowLevel(30000, 17770)) == "W 30000  L 17770" and str(PRESETS["lung"]) == "W 1500  L -600"
    assert str(WindowLevel(6.47, 0.1027)) == "W 6.47  L 0.1027"


def test_document_crosshair_events_and_unique_layer_names():
    doc = Document(Volume(np.zeros((4, 5, 6), np.int16)), name="ct")
    seen = []
    doc.crosshair_changed.connect(seen.append)
    doc.crosshair = (1, 2, 3)
    doc.crosshair = (1, 2, 3)  # unchanged: no event
    doc.crosshair = (np.nan, 0, 0)  # refused
    assert len(seen) == 1 and np.allclose(seen[0], (1, 2, 3))
    np.testing.assert_array_equal(doc.crosshair_index(), [1, 2, 3])
    heat = Volume(np.zeros((4, 5, 6), np.float32))
    a = doc.add_layer(HeatmapLayer(name="saliency", volume=heat))
    b = doc.add_layer(HeatmapLayer(name="saliency", volume=heat))
    assert (a.name, b.name) == ("saliency", "saliency (2)")
    assert isinstance(doc.base_layer, ImageLayer)


def test_layer_events_fire():
    layer = ImageLayer(name="x", volume=Volume(np.arange(100, dtype=np.int16).reshape(10, 10)))
    got = []
    layer.events.opacity.connect(got.append)
    layer.opacity = 0.25
    assert got == [0.25]
    assert layer.window is not None


def test_colormaps():
    assert lut("inferno").shape == (256, 4)
    assert tuple(lut("grey")[255]) == (255, 255, 255, 255)
    assert label_lut()[0, 3] == 0 and label_lut()[4, 3] == 255
    rgba = heatmap_rgba(np.array([0.0, 1.0, np.nan]), "grey", (0, 1))
    assert tuple(rgba[0]) == (0, 0, 0, 255) and tuple(rgba[1]) == (255, 255, 255, 255) and rgba[2, 3] == 0
    assert labels_rgba(np.array([0, 1]), opacity=0.5)[:, 3].tolist() == [0, 128]


def test_heatmap_indices_match_the_colour_map():
    """Heatmaps are drawn as indices into a table whose entry 0 is transparent: low → 1, high → 255, clipped
    outside [low, high]; NaN, ±Inf and values under the threshold → 0. The colours are the map's own."""
    v = np.array([-1.0, 0.0, 0.5, 1.0, 3.0, np.nan, np.inf, -np.inf, 0.2], np.float32)
    assert to_indices(v, 0.0, 1.0).tolist() == [1, 1, 128, 255, 255, 0, 0, 0, 52]
    assert to_indices(v, 0.0, 1.0, threshold=0.25).tolist() == [0, 0, 128, 255, 255, 0, 0, 0, 0]
    table = indexed_lut("inferno")
    assert table[0, 3] == 0 and (table[1:, 3] == 255).all()
    assert (table[1] == lut("inferno")[0]).all() and (table[255] == lut("inferno")[255]).all()
    rgba = heatmap_rgba(v, "inferno", (0.0, 1.0), threshold=0.25, opacity=0.4)  # exports and `lucent infer`
    assert (rgba[..., :3] == table[to_indices(v, 0.0, 1.0, 0.25), :3]).all()
    assert rgba[..., 3].tolist() == [0, 0, 102, 102, 102, 0, 0, 0, 0]


def test_blend_over_keeps_the_film_under_a_translucent_map():
    film = np.full((1, 2, 3), 200, np.uint8)
    rgba = np.array([[[0, 0, 0, 0], [0, 0, 0, 102]]], np.uint8)
    out = blend_over(film, rgba)
    assert out[0, 0].tolist() == [200, 200, 200] and out[0, 1].tolist() == [120, 120, 120]
