"""Results sent back to Orthanc (STOW-RS and C-STORE) and read back with highdicom: DICOM-SEG, parametric
map, secondary capture and a TID 1500 structured report, each referencing the source series."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from tests.net.orthanc import CT_PATIENT
from viewer.io import load_volume
from viewer.model.annotations import Annotation, ellipse_stats
from viewer.model.geometry import SliceMapping
from viewer.model.volume import Volume
from viewer.net import QueryFilter, connect
from viewer.net.outbox import findings_report, parametric_map, secondary_capture, segmentation

FINDINGS = {"Lesion": 0.83, "Effusion": 0.12, "No finding": 0.05}


def _sphere(shape: tuple[int, int, int]) -> np.ndarray:
    """A 2 mm × 0.98 mm ellipsoid "lesion" of label 1 in the CT's voxel grid."""
    kk, jj, ii = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return ((kk - 10) ** 2 * 16 + (jj - 260) ** 2 + (ii - 250) ** 2 < 40**2).astype(np.uint8)


@pytest.fixture(scope="module")
def base(ct_files) -> Volume:
    return load_volume(ct_files[0].parent)


def _measurements(base: Volume) -> list[Annotation]:
    """A 100-voxel ruler along the rows and an ellipse ROI (100 × 60 voxels) on slice 10."""

    def at(i: float, j: float) -> np.ndarray:
        return base.index_to_patient(np.array([i, j, 10.0]))

    return [Annotation("ruler", "axial", np.stack([at(200, 250), at(300, 250)])),
            Annotation("ellipse", "axial", np.stack([at(200, 220), at(300, 280)])),
            Annotation("text", "axial", np.stack([at(10, 10)]), text="not a measurement")]


@pytest.fixture(scope="module")
def results(base: Volume) -> dict[str, pydicom.Dataset]:
    nk, nj, ni = base.shape3d
    mask = Volume(_sphere(base.shape3d), base.affine.copy(), {"modality": "SEG"})
    # the map on its own, coarser grid (every second voxel in-plane): it is resampled onto the source grid
    coarse = base.affine.copy()
    coarse[:3, :2] *= 2
    heat = np.linspace(0, 1, nj // 2, dtype=np.float32)[None, :, None] * np.ones((nk, 1, ni // 2), np.float32)
    heat_vol = Volume(heat, coarse, {})
    return {
        "seg": segmentation(mask, base, {1: "tumour"}, "Lucent test mask"),
        "pm": parametric_map(heat_vol, base, "saliency", description="Lucent test map"),
        "sc": secondary_capture(base, heat_vol, 10, description="Lucent test overlay", threshold=0.5),
        "sr": findings_report(base, FINDINGS, algorithm="toy engine", annotations=_measurements(base)),
    }


def _fetch_back(client, study_uid: str, series_uid: str) -> pydicom.Dataset:
    (inst,) = client.client.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))
    buf = BytesIO()
    inst.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buf.getvalue()))


def _refs_series(ds: pydicom.Dataset, series_uid: str) -> bool:
    seqs = list(ds.get("ReferencedSeriesSequence", []))
    for item in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        seqs += list(item.ReferencedSeriesSequence)
    return any(s.SeriesInstanceUID == series_uid for s in seqs)


@pytest.mark.parametrize("via", ["stow", "c-store"])
def test_results_go_back_to_the_source_study_and_read_back_with_highdicom(results, base, via, web_config,
                                                                         dimse_config, orthanc):
    src = pydicom.dcmread(base.metadata["slice_files"][0], stop_before_pixels=True)
    sender = connect(web_config if via == "stow" else dimse_config)
    assert sender.store(list(results.values())) == 4
    web = connect(web_config)
    (study,) = web.find_studies(QueryFilter(patient_id=CT_PATIENT[1]))
    new = [s for s in web.find_series(study.uid) if s.uid != src.SeriesInstanceUID]
    try:
        assert len(new) == 4
        back = {str(ds.SOPClassUID): ds for ds in (_fetch_back(web, study.uid, s.uid) for s in new)}
        seg = hd.seg.Segmentation.from_dataset(back[results["seg"].SOPClassUID])
        pm = hd.pm.ParametricMap.from_dataset(back[results["pm"].SOPClassUID])
        sc = hd.Image.from_dataset(back[results["sc"].SOPClassUID])
        sr = hd.sr.Comprehensive3DSR.from_dataset(back[results["sr"].SOPClassUID])
        for ds in (seg, pm, sc, sr):
            assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == CT_PATIENT[1]
            assert _refs_series(ds, src.SeriesInstanceUID), ds.SOPClassUID
        # DICOM-SEG: the segment and its voxels on the source grid
        assert seg.get_segment_description(1).segment_label == "tumour"
        mask = seg.get_volume(combine_segments=True).array  # frames without the segment are left out
        assert mask.shape[1:] == (512, 512) and int((mask > 0).sum()) == int(_sphere(base.shape3d).sum())
        # parametric map: the float values, resampled onto the 512×512 source grid
        values = pm.get_volume().array if hasattr(pm, "get_volume") else pm.pixel_array
        assert values.shape[-2:] == (512, 512) and values.dtype.kind == "f"
        assert float(values.max()) == pytest.approx(1.0, abs=0.02)
        assert float(values.min()) == pytest.approx(0, abs=0.02)
        # secondary capture: RGB, pointing at its source slice
        rgb = sc.get_frame(1)
        assert sc.Modality == "OT" and sc.SamplesPerPixel == 3 and rgb.shape == (512, 512, 3)
        assert (rgb[0, :, 0] == rgb[0, :, 2]).all()  # the map is 0 on the first row: the grey image shows
        assert (rgb[150, :, 0] == rgb[150, :, 2]).all()  # ~0.3 lies below the layer's threshold: as on screen
        assert (rgb[-1, :, 0] > rgb[-1, :, 2]).mean() > 0.9  # and 1 on the last: inferno's yellow over it
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID in {
            pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in base.metadata["slice_files"]}
        # TID 1500 SR: one measurement per finding with its probability, the source images as evidence
        (group,) = sr.content.get_image_measurement_groups()
        got = {m.name.meaning: m.value for m in group.get_measurements()}
        assert got == pytest.approx(FINDINGS)
        assert len(group.source_images) == 20
        # and the ruler and the ellipse ROI as planar ROI groups in the series' frame of reference
        ruler, ellipse = sr.content.get_planar_roi_measurement_groups()
        spacing = float(src.PixelSpacing[1])
        (length,) = ruler.get_measurements()
        assert length.name == codes.SCT.Length and length.value == pytest.approx(100 * spacing, rel=1e-6)
        assert ruler.roi.frame_of_reference_uid == src.FrameOfReferenceUID
        area, mean, std = ellipse.get_measurements()
        expected = ellipse_stats(_measurements(base)[1], base, SliceMapping.for_volume(base, "axial"))
        assert area.value == pytest.approx(expected.area_mm2) and mean.value == pytest.approx(expected.mean)
        assert area.value == pytest.approx(np.pi * 50 * 30 * spacing**2, rel=0.03)
        assert mean.unit.value == "[hnsf'U]" and ellipse.roi.graphic_type.value == "ELLIPSE"
        axes = ellipse.roi.value
        assert np.linalg.norm(axes[1] - axes[0]) == pytest.approx(100 * spacing, rel=1e-6)  # major axis first
    finally:
        for s in new:
            orthanc.delete_series(s.uid)
