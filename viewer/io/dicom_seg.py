"""Export a label mask as DICOM-SEG (via highdicom) referencing the DICOM series it was drawn on.

The mask is first put on the base series' grid (nearest neighbour when its grid differs), so that frame k
of the segmentation is the source file of slice k (``metadata["slice_files"]`` from the DICOM reader).
Each label value present becomes one segment, numbered 1…N in increasing value order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.geometry import OverlaySampler, SliceMapping
from ..model.volume import Volume
from .atomic import atomic_path
from .errors import LoadError

_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def labels_on_base_grid(labels: Volume, base: Volume) -> np.ndarray:
    """``labels`` sampled (nearest) on every voxel of ``base``: ``[k, j, i]`` uint16."""
    return on_base_grid(labels, base, order=0).astype(np.uint16)


def on_base_grid(overlay: Volume, base: Volume, order: int) -> np.ndarray:
    """``overlay`` sampled on every voxel of ``base`` (``order`` 0 nearest, 1 linear): ``[k, j, i]``."""
    mapping = SliceMapping.for_volume(base, "native")
    sampler = OverlaySampler(base, overlay, mapping, order=order)
    if sampler.same_grid:
        return np.asarray(overlay.data3d)
    return np.stack([sampler.sample(k) for k in range(base.shape3d[0])])


def source_headers(base: Volume, purpose: str = "DICOM-SEG") -> list:
    """The DICOM headers (no pixels) of ``base``'s source files, slice k first-to-last, ready for highdicom:
    a SOPClassUID missing from the data set is taken from the file meta, missing type-2 patient/study
    attributes are added empty. Raises LoadError when ``base`` is not a complete DICOM series with UIDs."""
    import pydicom

    files = base.metadata.get("slice_files")
    if not files or any(f is None for f in files):
        raise LoadError(f"{purpose} needs the study to be a complete DICOM series; export NIfTI instead")
    sources = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if not ds.get("SOPClassUID") and ds.get("file_meta"):
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        if not ds.get("SOPInstanceUID") or not ds.get("SeriesInstanceUID") or not ds.get("StudyInstanceUID"):
            raise LoadError(f"{f}: the source DICOM has no instance/series/study UID, so a {purpose} could not "
                            "reference it; export NIfTI instead")
        for keyword in _TYPE2_COPIED:  # highdicom copies these; a missing one is written empty
            if keyword not in ds:
                setattr(ds, keyword, "")
        sources.append(ds)
    return sources


def write_dicom_seg(labels: Volume, base: Volume, out_path: str | Path,
                    label_names: dict[int, str] | None = None, description: str = "Lucent segmentation") -> Path:
    """Write ``labels`` as a DICOM-SEG file referencing ``base``'s source files. Atomic.

    Raises LoadError when ``base`` did not come from a complete DICOM series with instance UIDs, or the
    mask is empty.
    """
    seg = build_dicom_seg(labels, base, label_names, description)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp)
    return out_path


def build_dicom_seg(labels: Volume, base: Volume, label_names: dict[int, str] | None = None,
                    description: str = "Lucent segmentation"):  # noqa: ANN201 - highdicom.seg.Segmentation
    """``labels`` as a highdicom Segmentation referencing ``base``'s source files (see :func:`write_dicom_seg`)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = source_headers(base)
    mask = labels_on_base_grid(labels, base)
    values = [int(v) for v in np.unique(mask) if v != 0]
    if not values:
        raise LoadError("the mask is empty: nothing to export")
    seg_array = np.zeros(mask.shape, np.uint8)
    descriptions = []
    for number, value in enumerate(values, start=1):
        seg_array[mask == value] = number
        name = (label_names or {}).get(value, f"label {value}")
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="Lucent", version="0.1", family=codes.cid7162.ArtificialIntelligence),
        ))
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=seg_array, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=9901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Lucent", manufacturer_model_name="Lucent",
        software_versions="0.1", device_serial_number="0", series_description=description[:64],
    )
    return seg
