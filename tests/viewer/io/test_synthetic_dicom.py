"""Synthetic DICOM series: sorting, affine, gaps, tilt, several series, rescale rules, enhanced multi-frame."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from viewer.io import find_series, load_volume

from .dicom_factory import oblique_affine, write_series


def _phantom(nk=7, nj=12, ni=10, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.integers(-1000, 2000, size=(nk, nj, ni)).astype(np.int16)
    a[:, 0, 0] = np.arange(nk) * 10  # a per-slice marker
    return a


def test_oblique_anisotropic_shuffled_series(tmp_path):
    arr, aff = _phantom(), oblique_affine()
    write_series(tmp_path, arr, aff, shuffle=True)
    vol = load_volume(tmp_path)
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.affine, aff, atol=1e-4)
    assert vol.metadata["warnings"] == []
    assert vol.metadata["patient_id"] == "SYN001"
    np.testing.assert_allclose(vol.spacing, (0.7, 0.8, 2.5), atol=1e-5)


def test_reversed_k_is_sorted_by_position(tmp_path):
    arr, aff = _phantom(), oblique_affine()
    flipped = aff.copy()
    flipped[:3, 3] = aff[:3, 3] + aff[:3, 2] * (arr.shape[0] - 1)
    flipped[:3, 2] *= -1  # files written top-down
    write_series(tmp_path, arr, flipped)
    vol = load_volume(tmp_path)
    assert np.array_equal(vol.array, arr[::-1])  # k now ascends along the normal
    np.testing.assert_allclose(vol.affine, aff, atol=1e-4)


def test_missing_slice_warns_and_keeps_geometry(tmp_path):
    arr, aff = _phantom(nk=8), oblique_affine()
    paths = write_series(tmp_path, arr, aff)
    paths[3].unlink()
    vol = load_volume(tmp_path)
    assert any("missing slice" in w for w in vol.metadata["warnings"])
    assert vol.array.shape == arr.shape
    np.testing.assert_allclose(vol.affine, aff, atol=1e-4)
    keep = [0, 1, 2, 4, 5, 6, 7]
    assert np.array_equal(vol.array[keep], arr[keep])


def test_non_uniform_spacing_warns(tmp_path):
    arr, aff = _phantom(nk=5), np.diag([0.5, 0.5, 2.0, 1.0])
    paths = write_series(tmp_path / "s", arr, aff, shuffle=False)
    ds = pydicom.dcmread(paths[4])
    ds.ImagePositionPatient = [0, 0, 8.7]  # 2, 2, 2, 2.7 mm steps
    ds.save_as(paths[4])
    vol = load_volume(tmp_path / "s")
    assert any("non-uniform" in w for w in vol.metadata["warnings"])


def test_gantry_tilt_shear(tmp_path):
    arr = _phantom(nk=6)
    aff = np.diag([0.6, 0.6, 3.0, 1.0])
    aff[1, 2] = 3.0 * np.tan(np.radians(15))  # each slice shifted along y: tilted gantry
    write_series(tmp_path, arr, aff)
    vol = load_volume(tmp_path)
    np.testing.assert_allclose(vol.affine, aff, atol=1e-4)
    assert np.array_equal(vol.array, arr)
    assert any("gantry tilt of 15.0" in w for w in vol.metadata["warnings"])


def test_duplicate_positions_warn(tmp_path):
    arr, aff = _phantom(nk=4), np.diag([1.0, 1.0, 2.0, 1.0])
    write_series(tmp_path, arr, aff, series_uid="1.2.3.4")
    write_series(tmp_path / "again", arr, aff, series_uid="1.2.3.4", seed=5)
    vol = load_volume(tmp_path)
    assert vol.array.shape[0] == 4
    assert any("repeat an earlier slice position" in w for w in vol.metadata["warnings"])


def test_two_series_two_candidates(tmp_path):
    write_series(tmp_path / "a", _phantom(nk=6), oblique_affine(), description="big")
    write_series(tmp_path / "b", _phantom(nk=3, seed=2), np.diag([1.0, 1.0, 1.0, 1.0]), modality="MR",
                 rescale=(1, 0), description="small")  # fmt: skip
    cands = find_series(tmp_path)
    assert len(cands) == 2
    assert [c.n_files for c in cands] == [6, 3]
    assert cands[1].modality == "MR" and "small" in cands[1].description
    vol = load_volume(tmp_path)
    assert vol.array.shape[0] == 6
    assert any("1 other series" in w for w in vol.metadata["warnings"])
    small = load_volume(tmp_path, series_uid=cands[1].uid)
    assert small.modality == "MR" and small.array.shape == (3, 12, 10)


def test_mixed_orientations_are_split(tmp_path):
    write_series(tmp_path, _phantom(nk=4), np.diag([1.0, 1.0, 2.0, 1.0]), series_uid="1.2.3.9")
    write_series(tmp_path / "sag", _phantom(nk=3, nj=12, ni=10), oblique_affine(angle_deg=90),
                 series_uid="1.2.3.9", seed=3)  # fmt: skip
    cands = find_series(tmp_path)
    assert [c.uid for c in cands] == ["1.2.3.9#1", "1.2.3.9#2"]
    vol = cands[0].load()
    assert any("mixes 2 orientations" in w for w in vol.metadata["warnings"])


@pytest.mark.parametrize(
    ("rescale", "dtype"),
    [((1, 0), np.int16), ((1, -1024), np.int16), ((2, 0), np.float32), ((1, 0.5), np.float32)],
)
def test_rescale_dtype_rules(tmp_path, rescale, dtype):
    arr = _phantom(nk=3)
    if rescale[0] == 2:
        arr = (arr // 2) * 2
    if rescale[1] == 0.5:
        arr = arr.astype(np.float32) + 0.5
    write_series(tmp_path, arr, np.eye(4), rescale=rescale)
    vol = load_volume(tmp_path)
    assert vol.array.dtype == dtype
    np.testing.assert_array_equal(vol.array, arr)


def test_enhanced_multiframe_geometry(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr, aff = _phantom(nk=5), oblique_affine()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MR"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 12, 10, 5
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    po, pm = Dataset(), Dataset()
    di, dj = np.linalg.norm(aff[:3, 0]), np.linalg.norm(aff[:3, 1])
    po.ImageOrientationPatient = [*(aff[:3, 0] / di), *(aff[:3, 1] / dj)]
    pm.PixelSpacing = [dj, di]
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = [3, 0, 4, 1, 2]  # frames stored out of order
    per = []
    for k in order:
        item, pp = Dataset(), Dataset()
        pp.ImagePositionPatient = list((aff @ [0, 0, k, 1])[:3])
        item.PlanePositionSequence = Sequence([pp])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.ascontiguousarray(arr[order]).tobytes()
    ds.save_as(tmp_path / "enh.dcm", enforce_file_format=True)
    vol = load_volume(tmp_path / "enh.dcm")
    assert np.array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.affine, aff, atol=1e-4)
