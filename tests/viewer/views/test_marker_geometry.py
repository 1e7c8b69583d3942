"""A one-voxel marker at a known patient coordinate lands under the crosshair, on the same screen pixel,
in all three views — for a NIfTI and a DICOM series written from the same oblique, anisotropic data."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.viewer.model.test_geometry import oblique_affine
from viewer.io import load_volume
from viewer.model import LPS_FROM_RAS, Document, WindowLevel

MARKER_IJK = (11, 7, 4)  # (i, j, k)


@pytest.fixture(scope="module")
def marker_data():
    data = np.zeros((12, 20, 16), np.int16)  # [k, j, i]
    i, j, k = MARKER_IJK
    data[k, j, i] = 1000
    affine = oblique_affine(spacing=(0.9, 1.3, 2.5), origin=(-30.0, 12.0, 85.0), degrees=14.0)
    return data, affine


def _write_nifti(path, data, affine):
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), LPS_FROM_RAS @ affine), str(path))
    return path


def _write_dicom(folder, data, affine):
    from tests.viewer.io.dicom_factory import write_series

    write_series(folder, data, affine, modality="CT", rescale=(1, 0))
    return folder


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_marker_is_under_the_crosshair_in_every_view(qtbot, tmp_path, marker_data, kind):
    from viewer.views.study_view import StudyView

    data, affine = marker_data
    path = (_write_nifti(tmp_path / "m.nii.gz", data, affine) if kind == "nifti"
            else _write_dicom(tmp_path / "dcm", data, affine))
    volume = load_volume(path)
    marker_xyz = np.eye(4)[:3] @ affine @ np.append(MARKER_IJK, 1.0)
    # whatever the reader's own voxel order, the marker must be at the same patient coordinate
    found = np.argwhere(volume.data3d == 1000)
    assert len(found) == 1
    k, j, i = found[0]
    np.testing.assert_allclose(volume.index_to_patient([i, j, k]), marker_xyz, atol=1e-3)

    doc = Document(volume)
    doc.base_layer.window = WindowLevel(10, 500)  # marker white, background black
    view = StudyView(doc, layout="mpr")
    qtbot.addWidget(view)
    view.resize(720, 720)
    view.show()
    qtbot.waitExposed(view)
    doc.crosshair = marker_xyz
    for plane, sv in view.views.items():
        sv.h_line.setVisible(False)
        sv.v_line.setVisible(False)
        raw = sv.layer_images[0].raw
        _, col, row = sv.crosshair_screen()
        assert raw[int(round(row)), int(round(col))] == 1000, plane
        assert (raw == 1000).sum() == 1, plane
        # and on screen: the device pixel under the crosshair is white
        qtbot.wait(10)
        img = sv.graphics.grab().toImage()
        scene = sv.viewbox.mapViewToScene(sv.scene_of_screen(col, row))
        dev = sv.graphics.mapFromScene(scene)
        assert img.pixelColor(dev.x(), dev.y()).value() > 200, plane
