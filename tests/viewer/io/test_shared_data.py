"""Every shared real file loads; DICOM geometry agrees with dcm2niix; write_nifti round trip."""

from __future__ import annotations

import random

import nibabel as nib
import numpy as np
import pytest

from viewer.io import find_series, load_volume, write_nifti

from .helpers import aligned_array


def _sample(paths, n, seed=0):
    paths = sorted(paths)
    return random.Random(seed).sample(paths, min(n, len(paths)))


@pytest.fixture(scope="module")
def ct(shared_data):
    return load_volume(shared_data / "dicom" / "ct_series")


@pytest.fixture(scope="module")
def ct_nifti_path(shared_data):
    return shared_data / "dicom" / "ct_series_dcm2niix" / "ct_series.nii.gz"


def test_ct_series_loads_as_int16_hu(ct):
    assert ct.array.shape == (20, 512, 512)
    assert ct.array.dtype == np.int16
    assert ct.modality == "CT"
    assert ct.array.min() == -1024
    np.testing.assert_allclose(
        ct.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6
    )  # 2 mm from positions, not 3
    md = ct.metadata
    assert md["warnings"] == []
    assert md["window_center"] == 40 and md["window_width"] == 300
    assert md["series_description"] == "CT Body 3.0"
    assert md["body_part"] == "PARTIALBODY"


def test_ct_matches_dcm2niix_voxels_and_affine(ct, ct_nifti_path):
    oracle = load_volume(ct_nifti_path)
    assert oracle.array.dtype == np.int16
    # same voxel centres: both affines describe the same grid up to axis flips, within 1e-3 mm
    corners = np.array([[0, 0, 0], [511, 0, 0], [0, 511, 0], [0, 0, 19], [511, 511, 19]], dtype=float)
    pts = ct.index_to_patient(corners)
    back = oracle.patient_to_index(pts)
    np.testing.assert_allclose(back, np.rint(back), atol=1e-3 / 0.9765625)
    np.testing.assert_allclose(oracle.index_to_patient(np.rint(back)), pts, atol=1e-3)
    assert np.array_equal(aligned_array(oracle, ct), ct.array)


def test_write_nifti_round_trip_matches_dcm2niix(ct, ct_nifti_path, tmp_path):
    out = write_nifti(ct, tmp_path / "ct.nii.gz")
    mine, theirs = nib.load(out), nib.load(ct_nifti_path)
    np.testing.assert_allclose(mine.affine, theirs.affine, atol=1e-3)
    assert mine.header["sform_code"] == 1 and mine.header["qform_code"] == 1
    np.testing.assert_allclose(mine.get_qform(), theirs.affine, atol=1e-3)
    assert np.array_equal(np.asarray(mine.dataobj), np.asarray(theirs.dataobj))
    assert mine.get_data_dtype() == np.int16
    again = load_volume(out)
    np.testing.assert_allclose(again.affine, load_volume(ct_nifti_path).affine, atol=1e-3)


def test_misc_dicom_files(shared_data):
    misc = shared_data / "dicom" / "misc"
    vols = {p.name: load_volume(p) for p in sorted(misc.glob("*.dcm"))}
    assert len(vols) == 11
    uncr, j2kr = vols["RG1_UNCR.dcm"], vols["RG1_J2KR.dcm"]
    assert uncr.array.dtype == np.uint16 and uncr.array.shape == (1955, 1841)
    assert np.array_equal(uncr.array, j2kr.array)
    assert not uncr.spacing_known  # PixelSpacing "0\0"
    assert uncr.metadata["monochrome1_inverted"]
    assert uncr.modality == "CR"
    emri = [vols[n] for n in ("emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
                              "emri_small_jpeg_ls_lossless.dcm")]  # fmt: skip
    for v in emri:
        assert v.array.shape == (10, 64, 64) and v.array.dtype == np.uint16
        assert np.array_equal(v.array, emri[0].array)
        assert any("no slice geometry" in w for w in v.metadata["warnings"])
    assert np.array_equal(vols["MR2_UNCR.dcm"].array, vols["MR2_J2KR.dcm"].array)
    assert vols["MR2_UNCR.dcm"].array.dtype == np.float32  # slope 3.77
    np.testing.assert_allclose(vols["MR2_UNCR.dcm"].spacing[:2], (0.195313, 0.195313), atol=1e-6)
    us = vols["US1_UNCR.dcm"]
    assert us.rgb and us.array.shape == (480, 640, 3) and us.array.dtype == np.uint8
    assert vols["JPGLosslessP14SV1_1s_1f_8b.dcm"].array.dtype == np.uint8
    assert vols["RG3_J2KR.dcm"].array.shape == (1760, 1760)


def test_monochrome1_is_inverted(shared_data):
    import pydicom

    path = shared_data / "dicom" / "misc" / "RG1_UNCR.dcm"
    raw = pydicom.dcmread(path).pixel_array
    vol = load_volume(path)
    assert np.array_equal(vol.array.astype(np.int32), 32767 - raw.astype(np.int32))


def test_dicom_folder_lists_series(shared_data):
    cands = find_series(shared_data / "dicom")
    assert cands[0].n_files == 20 and cands[0].modality == "CT"
    assert "20 images" in cands[0].description and "512×512×20" in cands[0].description
    assert len({c.uid for c in cands}) == len(cands)


def test_brain_mri_nifti(shared_data):
    paths = sorted((shared_data / "brain_mri").rglob("*.nii.gz"))
    assert len(paths) >= 20
    for p in paths:
        v = load_volume(p)
        assert v.array.shape == (155, 240, 240), p
        ref = nib.load(p)
        np.testing.assert_allclose(v.affine, np.diag([-1, -1, 1, 1]) @ ref.affine)
        if "BraTS-GLI" in p.name:
            assert v.array.dtype == np.int16
        elif "brainmask" in p.name:
            assert v.array.dtype == np.float32  # int32 with a scale factor
        else:
            assert v.array.dtype == np.float32
    flair = shared_data / "brain_mri" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"
    v = load_volume(flair)
    assert np.array_equal(v.array, np.asarray(nib.load(flair).dataobj).transpose(2, 1, 0))


@pytest.mark.parametrize(
    ("folder", "pattern", "n", "rgb"),
    [
        ("cxr/images", "*.png", 10, None),
        ("dermoscopy/images", "*.jpg", 8, True),
        ("head_ct/images", "*.png", 8, None),
    ],
)
def test_raster_samples(shared_data, folder, pattern, n, rgb):
    for p in _sample((shared_data / folder).glob(pattern), n):
        v = load_volume(p)
        assert not v.spacing_known
        np.testing.assert_array_equal(v.affine, np.eye(4))
        if rgb:
            assert v.rgb and v.array.ndim == 3 and v.array.shape[2] == 3 and v.modality == "XC"
        if not v.rgb:
            assert v.array.ndim == 2 and v.array.dtype in (np.uint8, np.uint16) and v.modality == "OT"


def test_demo_study_is_the_shared_ct_decompressed(ct):
    """resources/demo: the shared J2K CT series with its pixel data decompressed, nothing else changed."""
    import pydicom

    from app.loading import DEMO_STUDY

    demo = load_volume(DEMO_STUDY)
    assert np.array_equal(demo.array, ct.array) and demo.array.dtype == ct.array.dtype
    assert np.array_equal(demo.affine, ct.affine)
    first = sorted(DEMO_STUDY.glob("CT.*"))[0]
    assert pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
