"""Build a :class:`Volume` from DICOM headers: a stack of single-frame files, or one 2D image.

Frames: the array is ``[k, j, i]`` (``[j, i]`` for one image; colour adds a last axis of 3) and the affine
maps (i, j, k, 1) to patient LPS mm, built by :mod:`.dicom_geometry` from ImagePositionPatient,
ImageOrientationPatient and PixelSpacing. Multi-frame files go through :mod:`.dicom_multiframe`.
"""

from __future__ import annotations

import numpy as np

from ..model.volume import Volume
from .dicom_assemble import assemble
from .dicom_finish import finish_volume, plain_affine, xray_spacing
from .dicom_geometry import in_plane_affine, stack_geometry
from .dicom_header import DicomHeader
from .dicom_pixels import plan_dtype
from .errors import add_warning, fail
from .memory import check_fits_in_ram


def build_volume(
    headers: list[DicomHeader], *, warnings: list[str] | None = None, source: str | None = None
) -> Volume:
    """Volume from single-frame files of one series (or a single multi-frame file)."""
    h0 = headers[0]
    for h in headers:
        if h.pixel_offset is None:
            raise fail(h.path, "DICOM file has no pixel data")
        if h.rows <= 0 or h.columns <= 0:
            raise fail(h.path, "DICOM image has no rows or columns")
    n_images = h0.frames if len(headers) == 1 else len(headers)
    nbytes = n_images * h0.rows * h0.columns * max(1, h0.samples) * plan_dtype(headers).dtype.itemsize
    too_big = check_fits_in_ram(nbytes, f"DICOM header for {n_images} × {h0.columns}×{h0.rows} images")
    if too_big:
        raise fail(h0.path, too_big)
    if len(headers) == 1 and h0.frames > 1:
        from .dicom_multiframe import build_multiframe_volume

        vol = build_multiframe_volume(h0)
        for w in warnings or []:
            add_warning(vol.metadata, w)
        return vol
    all_warnings = list(warnings or [])
    geometric = all(h.position is not None and h.orientation is not None for h in headers)
    spacing_known = True
    if geometric and len(headers) > 1:
        orientation = headers[0].orientation
        spacing = h0.pixel_spacing
        if spacing is None:
            spacing_known = False
            all_warnings.append("no PixelSpacing: 1 mm pixels assumed")
        thickness = _slice_thickness(h0)
        geo = stack_geometry(
            np.stack([h.position for h in headers]), orientation, spacing or (1.0, 1.0), thickness
        )
        all_warnings += geo.warnings
        ordered = [headers[n] for n in geo.order]
        jobs = [(h, 0, slot) for h, slot in zip(ordered, geo.slots, strict=True)]
        n_slots, affine = geo.n_slots, geo.affine
    else:
        ordered = sorted(headers, key=lambda h: (h.instance, str(h.path)))
        jobs = [(h, 0, k) for k, h in enumerate(ordered)]
        n_slots = len(ordered)
        spacing = xray_spacing(h0)
        spacing_known = spacing is not None
        if len(ordered) == 1 and geometric:
            affine = in_plane_affine(h0.orientation, spacing or (1.0, 1.0), h0.position)
            affine[:3, 2] *= _slice_thickness(h0)
        else:
            affine = plain_affine(spacing)
            if len(ordered) > 1:
                all_warnings.append(
                    f"{len(ordered)} images without slice positions: stacked in InstanceNumber order, 1 mm apart"
                )
        if not spacing_known and h0.samples == 1:
            all_warnings.append("no physical pixel size in the file: distances are in pixels")
    asm = assemble(jobs, n_slots)
    volume = finish_volume(asm, ordered[0], affine, spacing_known, all_warnings, source or str(h0.path))
    slice_files: list[str | None] = [None] * n_slots  # None: a blank slice filling a gap
    for h, _frame, slot in jobs:
        slice_files[slot] = str(h.path)
    volume.metadata["slice_files"] = slice_files
    return volume


def _slice_thickness(h: DicomHeader) -> float:
    try:
        t = float(h.get("SliceThickness") or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0
