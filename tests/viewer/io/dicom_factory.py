"""Write synthetic DICOM series with pydicom, for reader and view-geometry tests.

``write_series(folder, array, affine)`` writes one single-frame CT/MR file per k slice so that Lucent's
reader should return exactly ``array`` (``[k, j, i]``, int16, in output units such as HU) and ``affine``
(voxel (i, j, k, 1) → patient LPS mm). Any affine with orthogonal i/j columns works, including oblique planes
and a k column that is not normal to them (gantry tilt).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def write_series(
    folder: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    modality: str = "CT",
    series_uid: str | None = None,
    rescale: tuple[float, float] = (1, -1024),
    shuffle: bool = True,
    *,
    description: str = "synthetic",
    seed: int = 0,
) -> list[Path]:
    """Write ``array`` ([k, j, i] int16 output values) as one DICOM file per slice; returns the paths (k order).

    Stored values are ``(array - intercept) / slope`` as signed 16-bit. ImagePositionPatient of slice k is
    ``affine @ (0, 0, k, 1)``; the orientation comes from the i and j columns, PixelSpacing from their lengths.
    With ``shuffle`` the file names and InstanceNumbers are in random order (seeded).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    nk, nj, ni = array.shape
    slope, intercept = rescale
    stored = np.rint((array.astype(np.float64) - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("values do not fit signed 16-bit storage with this rescale")
    stored = stored.astype(np.int16)
    col_i, col_j = affine[:3, 0], affine[:3, 1]
    di, dj = float(np.linalg.norm(col_i)), float(np.linalg.norm(col_j))
    orientation = [*(col_i / di), *(col_j / dj)]
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    rng = random.Random(seed)
    order = list(range(nk))
    if shuffle:
        rng.shuffle(order)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    paths = []
    for k in range(nk):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = STUDY_UID
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = modality
        ds.SeriesDescription = description
        ds.PatientName = "Synthetic^Phantom"
        ds.PatientID = "SYN001"
        ds.StudyDate = "20240101"
        ds.SeriesNumber = 1
        ds.InstanceNumber = order[k] + 1
        pos = affine @ np.array([0.0, 0.0, k, 1.0])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos[:3]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = [f"{dj:.6f}", f"{di:.6f}"]
        ds.SliceThickness = "7.5"  # deliberately not the real spacing
        ds.Rows, ds.Columns = nj, ni
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        name = f"IM{rng.getrandbits(40):012x}" if shuffle else f"IM{k:05d}"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def oblique_affine(spacing=(0.7, 0.8, 2.5), origin=(-120.0, 35.0, 410.0), angle_deg=20.0) -> np.ndarray:
    """An LPS affine with rows/columns rotated ``angle_deg`` about two axes and anisotropic spacing (i, j, k)."""
    a = np.radians(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    rot = rx @ rz
    aff = np.eye(4)
    aff[:3, :3] = rot * np.asarray(spacing)
    aff[:3, 3] = origin
    return aff
