"""Results as DICOM objects to send back to the archive, each referencing the series it was computed on.

* a label mask → DICOM-SEG (:func:`viewer.io.dicom_seg.build_dicom_seg`);
* a continuous map (saliency, similarity) → a Parametric Map (float values on the source grid), or a
  Secondary Capture (the map blended over the image, RGB, one slice) that any viewer can show;
* findings (an engine's class scores) and the rulers / ellipse ROIs drawn on the study → a Comprehensive 3D
  SR, TID 1500 Measurement Report, with the source images as evidence.

All are in the source study (same StudyInstanceUID and patient) in new series, built with highdicom, so
they can be read back with highdicom. The source must be a DICOM series with its UIDs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydicom.dataset import Dataset

from ..io.dicom_seg import build_dicom_seg, on_base_grid, source_headers
from ..io.errors import LoadError
from ..model.annotations import Annotation
from ..model.volume import Volume

MANUFACTURER = "Lucent"
SOFTWARE = "0.1"
LOCAL_SCHEME = "99LUCENT"  # private coding scheme of finding names (local codes start with 99)
_SERIES_NUMBERS = {"seg": 9901, "pm": 9902, "sc": 9903, "sr": 9904}


def segmentation(labels: Volume, base: Volume, label_names: dict[int, str] | None = None,
                 description: str = "Lucent segmentation") -> Dataset:
    """A label mask as DICOM-SEG referencing ``base``'s source images."""
    return build_dicom_seg(labels, base, label_names, description)


def parametric_map(heat: Volume, base: Volume, name: str = "saliency", units: str = "",
                   description: str = "Lucent map") -> Dataset:
    """A continuous map, resampled (linear) onto ``base``'s grid, as a float Parametric Map.

    ``name`` labels the real-world value mapping (the map's meaning); ``units`` is a UCUM code or '' for
    no units (arbitrary units, as for saliency).
    """
    import highdicom as hd
    from pydicom.sr.coding import Code

    sources = source_headers(base, "a parametric map")
    values = np.nan_to_num(on_base_grid(heat, base, order=1).astype(np.float32), nan=0.0, posinf=0.0,
                           neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    unit = Code(units, "UCUM", units) if units and units.isascii() and " " not in units else \
        Code("1", "UCUM", "no units")
    mapping = hd.pm.RealWorldValueMapping(lut_label=name[:16] or "map", lut_explanation=name[:64] or "map",
                                          unit=unit, value_range=(lo, hi if hi > lo else lo + 1.0),
                                          slope=1.0, intercept=0.0)
    pm = hd.pm.ParametricMap(
        source_images=sources, pixel_array=values, series_instance_uid=hd.UID(),
        series_number=_SERIES_NUMBERS["pm"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MANUFACTURER, software_versions=SOFTWARE,
        device_serial_number="0", contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=(lo + hi) / 2,
                                                         window_width=max(hi - lo, 1e-6))],
        content_label="MAP", content_description=description[:64], series_description=description[:64],
    )
    return pm


def secondary_capture(base: Volume, overlay: Volume, k: int, colormap: str = "inferno",
                      value_range: tuple[float, float] = (0.0, 1.0), opacity: float = 0.5,
                      window: tuple[float, float] | None = None,
                      description: str = "Lucent overlay", threshold: float | None = None) -> Dataset:
    """Slice ``k`` of ``base`` with ``overlay`` blended over it, as an RGB Secondary Capture image.

    The image references its source slice (SourceImageSequence) and the source series
    (ReferencedSeriesSequence). ``window`` is (low, high) of the grey image (default: 0.5–99.5 percentiles).
    The overlay is coloured exactly as on screen (:func:`viewer.model.colormaps.heatmap_rgba` with the layer's
    ``threshold``, or :func:`~viewer.model.colormaps.labels_rgba` for ``colormap="labels"``).
    """
    import highdicom as hd

    from ..model.colormaps import blend_over, heatmap_rgba, labels_rgba

    sources = source_headers(base, "a secondary capture")
    k = int(np.clip(k, 0, base.shape3d[0] - 1))
    grey = np.asarray(base.data3d[k], dtype=np.float32)
    lo, hi = window or (float(np.percentile(grey, 0.5)), float(np.percentile(grey, 99.5)))
    g = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1)
    film = np.repeat(np.rint(g[..., None] * 255.0).astype(np.uint8), 3, axis=2)
    layer = on_base_grid(overlay, base, order=0 if colormap == "labels" else 1)[k].astype(np.float32)
    if colormap == "labels":
        rgba = labels_rgba(layer, opacity)
    else:
        rgba = heatmap_rgba(layer, colormap, value_range, threshold, opacity)
    rgb = blend_over(film, rgba)
    pixels = np.ascontiguousarray(np.rint(rgb).astype(np.uint8))
    src = sources[k]
    spacing = getattr(src, "PixelSpacing", None)
    sc = hd.sc.SCImage(
        pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
        study_instance_uid=src.StudyInstanceUID, series_instance_uid=hd.UID(),
        series_number=_SERIES_NUMBERS["sc"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, patient_id=src.get("PatientID", ""),
        patient_name=src.get("PatientName", ""), patient_birth_date=src.get("PatientBirthDate", "") or None,
        patient_sex=src.get("PatientSex", "") or None,
        accession_number=src.get("AccessionNumber", "") or None, study_id=src.get("StudyID", "") or None,
        study_date=src.get("StudyDate", "") or None, study_time=src.get("StudyTime", "") or None,
        referring_physician_name=src.get("ReferringPhysicianName", "") or None,
        pixel_spacing=None if not spacing else (float(spacing[0]), float(spacing[1])),
        patient_orientation=_orientation(src), series_description=description[:64],
    )
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = src.SeriesInstanceUID
    series_ref.ReferencedInstanceSequence = [ref]
    sc.ReferencedSeriesSequence = [series_ref]
    sc.DerivationDescription = f"{description[:64]} over slice {k + 1} of the source series"
    return sc


def _orientation(ds: Dataset) -> tuple[str, str]:
    """Patient Orientation (row, column direction letters) from ImageOrientationPatient, else ("L", "P")."""
    iop = getattr(ds, "ImageOrientationPatient", None)
    if not iop or len(iop) != 6:
        return "L", "P"
    letters = (("R", "L"), ("A", "P"), ("F", "H"))  # LPS: +x left, +y posterior, +z head

    def letter(v: list[float]) -> str:
        axis = int(np.argmax(np.abs(v)))
        return letters[axis][1 if v[axis] > 0 else 0]

    return letter([float(x) for x in iop[:3]]), letter([float(x) for x in iop[3:]])


def findings_report(base: Volume, findings: Mapping[str, float], algorithm: str = "Lucent",
                    algorithm_version: str = SOFTWARE, title: str = "Lucent findings",
                    annotations: Sequence[Annotation] = ()) -> Dataset:
    """Findings and measurements as a TID 1500 Measurement Report (Comprehensive 3D SR).

    * findings (name → probability in [0, 1]): one image-level measurement group (TID 1501) with one
      measurement per finding (unit: no units), names coded in the private scheme ``99LUCENT``, the algorithm
      named, every source image listed as the group's source images;
    * ``annotations``: each ruler a planar ROI group (TID 1410) with its Length (mm) on a 3D polyline, each
      ellipse ROI one with its Area (mm²), Mean and Standard Deviation (HU for CT) on a 3D ellipse, in the
      series' frame of reference; arrows and texts are left out.

    Every source image is the report's evidence (the source series is referenced).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    rois = [a for a in annotations if a.kind in ("ruler", "ellipse")]
    if not findings and not rois:
        raise LoadError("there is nothing to report: run an engine that gives scores, or measure, first")
    sources = source_headers(base, "a structured report")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=algorithm[:64], manufacturer_name=MANUFACTURER))
    context = hd.sr.ObservationContext(observer_device_context=observer)
    groups: list = []
    if findings:
        algo = hd.sr.AlgorithmIdentification(name=algorithm[:64], version=algorithm_version[:64])
        measurements = [
            hd.sr.Measurement(name=Code(f"F{n:03d}", LOCAL_SCHEME, name[:64]), value=float(p),
                              unit=codes.UCUM.NoUnits, algorithm_id=algo)
            for n, (name, p) in enumerate(sorted(findings.items(), key=lambda kv: -kv[1]), start=1)
        ]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=title[:64]),
            algorithm_id=algo, measurements=measurements,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in sources],
        ))
    frame_of_reference = str(sources[0].get("FrameOfReferenceUID", "") or "")
    if rois and not frame_of_reference:
        raise LoadError("the source series has no FrameOfReferenceUID, so its measurements cannot be placed")
    for n, a in enumerate(rois, start=1):
        groups.append(_roi_group(a, n, base, frame_of_reference))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=Code("363679005", "SCT", "Imaging procedure"),
                                     imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=sources, content=report, series_instance_uid=hd.UID(), series_number=_SERIES_NUMBERS["sr"],
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description=title[:64],
    )


def _roi_group(a: Annotation, n: int, base: Volume, frame_of_reference: str):  # noqa: ANN202
    """One planar ROI measurement group (TID 1410) for a ruler or an ellipse annotation."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..model.annotations import ellipse_stats, ruler_length_mm
    from ..model.geometry import SliceMapping

    label = f"{a.kind} {n}" + (f": {a.text}" if a.text else "")
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label[:64])
    shape = hd.sr.GraphicTypeValues3D
    if a.kind == "ruler":
        region = hd.sr.ImageRegion3D(graphic_type=shape.POLYLINE,
                                     graphic_data=np.asarray(a.points, np.float64),
                                     frame_of_reference_uid=frame_of_reference)
        measurements = [hd.sr.Measurement(name=codes.SCT.Length, value=ruler_length_mm(a),
                                          unit=codes.UCUM.Millimeter)]
    else:
        mapping = SliceMapping.for_volume(base, a.plane)
        stats = ellipse_stats(a, base, mapping)
        region = hd.sr.ImageRegion3D(graphic_type=shape.ELLIPSE, graphic_data=ellipse_axes(a, base, mapping),
                                     frame_of_reference_uid=frame_of_reference)
        unit = codes.UCUM.HounsfieldUnit if base.modality == "CT" else codes.UCUM.NoUnits
        measurements = [hd.sr.Measurement(name=codes.SCT.Area, value=stats.area_mm2,
                                          unit=codes.UCUM.SquareMillimeter),
                        hd.sr.Measurement(name=codes.SCT.Mean, value=stats.mean, unit=unit),
                        hd.sr.Measurement(name=codes.SCT.StandardDeviation, value=stats.std, unit=unit)]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=region, measurements=measurements)


def ellipse_axes(a: Annotation, base: Volume, mapping) -> np.ndarray:  # noqa: ANN001 - SliceMapping
    """The ellipse inscribed in ``a``'s bounding box as SR ELLIPSE graphic data: ``(4, 3)`` patient mm, the
    major axis' two ends first, then the minor axis' (DICOM's order)."""
    (s, c0, r0), (_, c1, r1) = (mapping.index_to_screen(base.patient_to_index(p)) for p in a.points)
    cc, rr, ac, ar = (c0 + c1) / 2, (r0 + r1) / 2, abs(c1 - c0) / 2, abs(r1 - r0) / 2
    ends = [(cc - ac, rr), (cc + ac, rr), (cc, rr - ar), (cc, rr + ar)]
    pts = np.array([base.index_to_patient(mapping.screen_to_index(s, c, r)) for c, r in ends], np.float64)
    if np.linalg.norm(pts[1] - pts[0]) < np.linalg.norm(pts[3] - pts[2]):
        pts = pts[[2, 3, 0, 1]]
    return pts
