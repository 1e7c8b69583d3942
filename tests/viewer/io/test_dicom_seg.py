"""DICOM-SEG export: the segment frames reference the right source slices, in the right patient positions."""

import numpy as np
import pydicom
import pytest

from tests.viewer.io.dicom_factory import write_series
from viewer.io import load_volume
from viewer.io.dicom_seg import write_dicom_seg
from viewer.io.errors import LoadError
from viewer.model import Volume


def test_seg_round_trip(tmp_path):
    import highdicom as hd

    data = np.zeros((6, 16, 20), np.int16)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-10, 5, 40)
    write_series(tmp_path / "ct", data, affine)
    base = load_volume(tmp_path / "ct")
    labels = np.zeros(base.array.shape, np.uint8)
    labels[2, 4:8, 5:9] = 4
    labels[4, 10:12, 1:3] = 2
    out = write_dicom_seg(Volume(labels, base.affine), base, tmp_path / "seg.dcm", {2: "oedema", 4: "enhancing"})
    seg = hd.seg.segread(out)
    assert [seg.get_segment_description(n).segment_label for n in (1, 2)] == ["oedema", "enhancing"]
    # each segmented frame references the source slice at the same patient position
    for k, segment_number, value in ((2, 2, 4), (4, 1, 2)):
        source = pydicom.dcmread(base.metadata["slice_files"][k], stop_before_pixels=True)
        arr = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[segment_number],
                                                assert_missing_frames_are_empty=True)
        np.testing.assert_array_equal(arr[0, :, :, 0].astype(bool), labels[k] == value)
        np.testing.assert_allclose(base.index_to_patient([0, 0, k]), [float(v) for v in source.ImagePositionPatient])


def test_seg_refuses_non_dicom_and_empty(tmp_path):
    base = Volume(np.zeros((3, 4, 5), np.int16))
    with pytest.raises(LoadError, match="complete DICOM series"):
        write_dicom_seg(Volume(np.ones((3, 4, 5), np.uint8)), base, tmp_path / "x.dcm")
    data = np.zeros((3, 8, 8), np.int16)
    write_series(tmp_path / "ct", data, np.diag([1, 1, 2, 1.0]))
    dicom_base = load_volume(tmp_path / "ct")
    with pytest.raises(LoadError, match="empty"):
        write_dicom_seg(Volume(np.zeros((3, 8, 8), np.uint8), dicom_base.affine), dicom_base, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
