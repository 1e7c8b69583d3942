"""Annotation model: ruler length in mm, ellipse ROI statistics, slice membership, serialisation."""

import numpy as np
import pytest

from viewer.model.annotations import Annotation, ellipse_stats, on_slice, ruler_length_mm
from viewer.model.geometry import SliceMapping
from viewer.model.volume import Volume


@pytest.fixture
def volume():
    data = np.zeros((5, 40, 60), np.int16)
    data[2, 10:30, 20:40] = 100  # a bright 20×20 square on slice 2
    return Volume(data, np.diag([0.5, 0.8, 3.0, 1.0]), "CT")


def test_ruler_length_uses_mm(volume):
    p0 = volume.index_to_patient([0, 0, 2])
    p1 = volume.index_to_patient([30, 40, 2])  # 15 mm across, 32 mm down
    a = Annotation("ruler", "axial", [p0, p1])
    assert ruler_length_mm(a) == pytest.approx(np.hypot(15, 32))


def test_ellipse_stats_inside_bright_square(volume):
    m = SliceMapping.for_volume(volume, "axial")
    # bounding box corners at pixels (24, 14) and (36, 26): an ellipse with 6-pixel semi-axes
    a = Annotation("ellipse", "axial", [volume.index_to_patient([24, 14, 2]), volume.index_to_patient([36, 26, 2])])
    st = ellipse_stats(a, volume, m)
    assert st.mean == 100 and st.std == 0
    expected = sum(1 for r in range(14, 27) for c in range(24, 37) if ((c - 30) / 6) ** 2 + ((r - 20) / 6) ** 2 <= 1)
    assert st.n == expected
    assert st.area_mm2 == pytest.approx(expected * 0.5 * 0.8)
    half = Annotation("ellipse", "axial", [volume.index_to_patient([30, 14, 2]), volume.index_to_patient([50, 26, 2])])
    st2 = ellipse_stats(half, volume, m)
    assert 0 < st2.mean < 100 and st2.std > 0


def test_on_slice_and_plane(volume):
    m = SliceMapping.for_volume(volume, "axial")
    a = Annotation("text", "axial", [volume.index_to_patient([3, 3, 2])], text="lesion")
    assert on_slice(a, volume, m, 2) and not on_slice(a, volume, m, 3)
    assert not on_slice(a, volume, SliceMapping.for_volume(volume, "coronal"), 3)


def test_round_trip_and_validation():
    a = Annotation("arrow", "coronal", [[1, 2, 3], [4, 5, 6]], text="here")
    b = Annotation.from_dict(a.to_dict())
    assert b.kind == "arrow" and b.text == "here" and np.allclose(b.points, a.points)
    with pytest.raises(ValueError):
        Annotation("ruler", "axial", [[0, 0, 0]])
    with pytest.raises(ValueError):
        Annotation("polygon", "axial", [[0, 0, 0]])
