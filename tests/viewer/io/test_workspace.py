"""Workspace save/restore: layers on their own grids, annotations, window and crosshair survive."""

import zipfile

import nibabel as nib
import numpy as np
import pytest

from viewer.io.errors import LoadError
from viewer.io.workspace import load_workspace, read_workspace_state, save_workspace
from viewer.model import LPS_FROM_RAS, Document, HeatmapLayer, LabelsLayer, Volume, WindowLevel
from viewer.model.annotations import Annotation


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(-100, 100, (6, 10, 12)).astype(np.int16)
    aff = np.diag([0.8, 0.9, 2.5, 1.0])
    aff[:3, 3] = (-5, 7, 30)
    path = tmp_path / "study.nii.gz"
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), LPS_FROM_RAS @ aff), str(path))
    from viewer.io import load_volume

    doc = Document(load_volume(path), name="t1", source=str(path))
    heat_aff = aff.copy()
    heat_aff[:3, :3] *= 2
    heat = Volume(rng.random((3, 5, 6)).astype(np.float32), heat_aff)
    doc.add_layer(HeatmapLayer(name="engine · saliency · effusion", volume=heat, value_range=(0.1, 0.9),
                               threshold=0.3, units="a.u.", legend="Grad-CAM", colormap="jet", opacity=0.4))
    doc.add_layer(LabelsLayer(name="mask", volume=Volume((data > 50).astype(np.uint8), aff), outline=True,
                              label_names={1: "tumour"}, visible=False))
    doc.base_layer.window = WindowLevel(123, 45)
    doc.annotations.append(Annotation("ruler", "axial", [[0, 0, 30], [5, 5, 30]]))
    doc.crosshair = (1.0, 8.0, 33.0)
    return doc


def test_round_trip(study, tmp_path):
    out = save_workspace(study, tmp_path / "ws.lucent", view_state={"layout": "single"})
    doc, view = load_workspace(out)
    assert view == {"layout": "single"}
    assert [la.name for la in doc.layers] == [la.name for la in study.layers]
    np.testing.assert_array_equal(doc.base.array, study.base.array)
    heat, mask = doc.layers[1], doc.layers[2]
    assert isinstance(heat, HeatmapLayer) and isinstance(mask, LabelsLayer)
    np.testing.assert_allclose(heat.volume.affine, study.layers[1].volume.affine, atol=1e-5)
    np.testing.assert_array_equal(heat.volume.array, study.layers[1].volume.array)
    assert heat.value_range == (0.1, 0.9) and heat.threshold == 0.3 and heat.colormap == "jet"
    assert heat.opacity == pytest.approx(0.4) and heat.legend == "Grad-CAM" and heat.units == "a.u."
    assert mask.outline and not mask.visible and mask.label_names == {1: "tumour"}
    assert doc.base_layer.window == WindowLevel(123, 45)
    np.testing.assert_allclose(doc.crosshair, (1.0, 8.0, 33.0))
    assert len(doc.annotations) == 1 and doc.annotations[0].kind == "ruler"


def test_bad_workspace_and_missing_source(study, tmp_path):
    junk = tmp_path / "junk.lucent"
    junk.write_bytes(b"not a zip")
    with pytest.raises(LoadError, match="not a Lucent workspace"):
        read_workspace_state(junk)
    out = save_workspace(study, tmp_path / "ws.lucent")
    (tmp_path / "study.nii.gz").rename(tmp_path / "moved.nii.gz")
    with pytest.raises(LoadError, match="missing"):
        load_workspace(out)
    doc, _ = load_workspace(out, source_override=tmp_path / "moved.nii.gz")
    assert len(doc.layers) == 3


def test_save_is_atomic_on_failure(study, tmp_path, monkeypatch):
    out = save_workspace(study, tmp_path / "ws.lucent")
    before = out.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("viewer.io.workspace.write_nifti", boom)
    with pytest.raises(OSError):
        save_workspace(study, out)
    assert out.read_bytes() == before  # the previous workspace is intact
    assert zipfile.is_zipfile(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
