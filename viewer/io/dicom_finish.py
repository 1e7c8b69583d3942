"""Shared last steps of the DICOM volume builders (:mod:`.dicom_series`, :mod:`.dicom_multiframe`).

X-ray pixel spacing, the affine of an image without patient geometry, and wrapping an assembled array with
its metadata. Kept apart so that the two builders do not import each other.
"""

from __future__ import annotations

import numpy as np

from ..model.volume import Volume
from .dicom_assemble import Assembled
from .dicom_header import DicomHeader, parse_spacing
from .dicom_metadata import dicom_metadata
from .errors import add_warning
from .values import warn_non_finite


def xray_spacing(h: DicomHeader) -> tuple[float, float] | None:
    """(row, column) spacing in mm from PixelSpacing, else ImagerPixelSpacing; None when unknown or 0."""
    if h.pixel_spacing is not None:
        return h.pixel_spacing
    return parse_spacing(h.get("ImagerPixelSpacing"))


def plain_affine(spacing_rc: tuple[float, float] | None, step_mm: float = 1.0) -> np.ndarray:
    """Affine without patient geometry: i → +x (L), j → +y (P), k → +z, spacing in mm (1 mm if unknown)."""
    sr, sc = spacing_rc or (1.0, 1.0)
    return np.diag([sc, sr, step_mm, 1.0])


def finish_volume(
    asm: Assembled,
    h0: DicomHeader,
    affine: np.ndarray,
    spacing_known: bool,
    warnings: list[str],
    source: str,
) -> Volume:
    """Wrap an assembled array with metadata; a single slice becomes a 2D ``[j, i]`` array."""
    array = asm.array
    if array.shape[0] == 1:
        array = array[0]
    md = dicom_metadata(h0, source)
    if asm.inverted_sum is not None:
        md["monochrome1_inverted"] = True
        if "window_center" in md:
            md["window_center"] = asm.inverted_sum - md["window_center"]
    for w in warnings:
        add_warning(md, w)
    warn_non_finite(array, md)
    rgb = h0.samples > 1
    return Volume(
        array=array, affine=affine, modality=h0.modality, metadata=md, spacing_known=spacing_known, rgb=rgb
    )
