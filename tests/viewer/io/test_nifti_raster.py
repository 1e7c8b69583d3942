"""NIfTI reading rules, write_nifti (incl. RGB), raster images and content sniffing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from viewer.io import find_series, load_volume, write_nifti
from viewer.model.volume import Volume

from .dicom_factory import write_series


def _save(tmp_path, data, affine=None, name="x.nii.gz", slope=None, inter=None):
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    p = tmp_path / name
    nib.save(img, p)
    return p


def test_nifti_axes_and_ras_to_lps(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # [i, j, k]
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    aff[:3, 3] = [10, 20, 30]
    vol = load_volume(_save(tmp_path, data, aff))
    assert vol.array.shape == (4, 3, 2) and vol.array.dtype == np.int16
    assert vol.array[3, 2, 1] == data[1, 2, 3]
    np.testing.assert_allclose(vol.affine, np.diag([-1, -1, 1, 1]) @ aff)


def test_nifti_integer_intercept_stays_integer(tmp_path):
    data = np.array([[[0, 100], [2000, 3000]]], dtype=np.int16)
    vol = load_volume(_save(tmp_path, data, slope=1.0, inter=-1024.0))
    assert vol.array.dtype == np.int16 and vol.array.min() == -1024


def test_nifti_real_slope_gives_float32(tmp_path):
    data = np.array([[[0, 100], [2000, 3000]]], dtype=np.int16)
    vol = load_volume(_save(tmp_path, data, slope=0.5, inter=1.0))
    assert vol.array.dtype == np.float32
    assert vol.array.max() == pytest.approx(1501.0)


def test_nifti_4d_takes_first_volume(tmp_path):
    data = np.random.default_rng(0).random((5, 6, 7, 3)).astype(np.float32)
    vol = load_volume(_save(tmp_path, data))
    assert vol.array.shape == (7, 6, 5)
    assert np.array_equal(vol.array, data[..., 0].transpose(2, 1, 0))
    assert any("3 volumes" in w for w in vol.metadata["warnings"])


def test_write_nifti_oblique_round_trip(tmp_path):
    from .dicom_factory import oblique_affine

    arr = np.random.default_rng(1).integers(-100, 100, (5, 6, 7)).astype(np.int16)
    vol = Volume(arr, oblique_affine())
    back = load_volume(write_nifti(vol, tmp_path / "o.nii"))
    # rows are stored bottom-up as dcm2niix does, so compare through world coordinates
    np.testing.assert_allclose(back.index_to_patient([0, 5, 0]), vol.index_to_patient([0, 0, 0]), atol=1e-4)
    assert np.array_equal(back.array, arr[:, ::-1])
    same = load_volume(write_nifti(vol, tmp_path / "p.nii.gz", flip_rows=False))
    assert np.array_equal(same.array, arr)
    np.testing.assert_allclose(same.affine, vol.affine, atol=1e-4)


def test_write_nifti_rgb24(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 255, (6, 8, 3)).astype(np.uint8)
    vol = Volume(rgb, np.eye(4), rgb=True)
    p = write_nifti(vol, tmp_path / "c.nii.gz", flip_rows=False)
    assert nib.load(p).get_data_dtype().names == ("R", "G", "B")
    back = load_volume(p)
    assert back.rgb and np.array_equal(back.array, rgb)


def test_write_nifti_gantry_tilt(tmp_path):
    aff = np.diag([0.6, 0.6, 3.0, 1.0])
    aff[1, 2] = 0.8
    vol = Volume(np.zeros((3, 4, 5), np.int16), aff)
    back = load_volume(write_nifti(vol, tmp_path / "t.nii.gz", flip_rows=False))
    np.testing.assert_allclose(back.affine, aff, atol=1e-5)  # sform keeps the shear


@pytest.mark.parametrize(
    ("mode", "shape", "dtype", "rgb"),
    [("L", (9, 7), np.uint8, False), ("I;16", (9, 7), np.uint16, False), ("RGB", (9, 7, 3), np.uint8, True),
     ("RGBA", (9, 7, 3), np.uint8, True), ("P", (9, 7, 3), np.uint8, True), ("LA", (9, 7), np.uint8, False)],
)  # fmt: skip
def test_raster_modes(tmp_path, mode, shape, dtype, rgb):
    im = Image.new(mode, (7, 9))
    p = tmp_path / "img.png"
    im.save(p)
    vol = load_volume(p)
    assert vol.array.shape == shape and vol.array.dtype == dtype and vol.rgb == rgb
    assert vol.modality == ("XC" if rgb else "OT") and not vol.spacing_known


def test_content_sniffing_ignores_extensions(tmp_path):
    write_series(tmp_path / "d", np.zeros((2, 4, 4), np.int16), np.eye(4), shuffle=False)
    dcm = next((tmp_path / "d").iterdir())
    renamed = tmp_path / "looks_like.png"
    renamed.write_bytes(dcm.read_bytes())
    assert load_volume(renamed).modality == "CT"
    png = tmp_path / "picture.dcm"
    Image.new("L", (5, 5)).save(png, format="PNG")
    assert load_volume(png).array.shape == (5, 5)
    nii = tmp_path / "volume.bin"
    nii.write_bytes(_save(tmp_path, np.zeros((2, 2, 2), np.float32), name="v.nii").read_bytes())
    assert load_volume(nii).array.shape == (2, 2, 2)


def test_dicom_without_preamble(tmp_path):
    path = write_series(tmp_path / "d", np.zeros((1, 4, 4), np.int16), np.eye(4), shuffle=False)[0]
    raw = path.read_bytes()[132:]  # strip preamble + "DICM": starts at the (0002,xxxx) meta group
    bare = tmp_path / "bare"
    bare.write_bytes(raw)
    assert load_volume(bare).array.shape == (4, 4)


def test_mixed_folder_lists_every_kind(tmp_path):
    write_series(tmp_path / "ct", np.zeros((3, 4, 4), np.int16), np.eye(4))
    Image.new("RGB", (5, 5)).save(tmp_path / "photo.jpg")
    _save(tmp_path, np.zeros((2, 2, 2), np.float32), name="brain.nii.gz")
    kinds = sorted(c.description.split(" · ")[0] for c in find_series(tmp_path))
    assert kinds == ["CT", "NIfTI", "image"]
