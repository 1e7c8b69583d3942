"""Multi-frame DICOM (enhanced CT/MR functional groups, cine, multi-frame US) → :class:`Volume`.

Enhanced objects place each frame with PlanePositionSequence / PlaneOrientationSequence / PixelMeasuresSequence
(per-frame, else shared functional groups) and may rescale per frame (PixelValueTransformationSequence). Frames
are then sorted along the normal like a series and the affine maps (i, j, k, 1) to LPS mm. Without that
geometry the frames are shown as a stack in file order with a 1 mm identity-like affine and a warning.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..model.volume import Volume
from .dicom_assemble import assemble
from .dicom_finish import finish_volume, plain_affine, xray_spacing
from .dicom_geometry import stack_geometry
from .dicom_header import DicomHeader, _float, _orientation, _vector, parse_spacing
from .dicom_pixels import can_read_natively, check_encapsulated_complete, stored_dtype
from .errors import fail

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def _item(ds: Dataset | None, seq: str) -> Dataset | None:
    if ds is None:
        return None
    try:
        s = ds.get(seq)
        return s[0] if s else None
    except (TypeError, IndexError, AttributeError):
        return None


def _frame_value(per: Dataset | None, shared: Dataset | None, seq: str, kw: str):
    for group in (per, shared):
        item = _item(group, seq)
        if item is not None and kw in item:
            return item.get(kw)
    return None


def build_multiframe_volume(h: DicomHeader) -> Volume:
    """Volume ``[k, j, i]`` (or ``[k, j, i, 3]``) from all frames of one file."""
    ds = h.ds
    if can_read_natively(h):  # before the per-frame loop: NumberOfFrames may be absurd
        need = h.pixel_offset + h.frames * h.rows * h.columns * stored_dtype(h).itemsize
        try:
            short = h.path.stat().st_size < need
        except OSError:
            short = False
        if short:
            raise fail(h.path, f"truncated DICOM file (pixel data is shorter than its {h.frames} frames)")
    fragments = check_encapsulated_complete(h)
    if fragments is not None and fragments < h.frames:  # every frame has at least one fragment
        raise fail(h.path, f"NumberOfFrames says {h.frames} but the file holds at most {fragments} frames")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_seq = ds.get("PerFrameFunctionalGroupsSequence") or []
    per = [per_seq[f] if f < len(per_seq) else None for f in range(h.frames)]

    frame_headers: list[DicomHeader] = []
    positions, orientations = [], []
    spacing = None
    for f in range(h.frames):
        slope = _float(
            _frame_value(per[f], shared, "PixelValueTransformationSequence", "RescaleSlope"), h.slope
        )
        inter = _float(
            _frame_value(per[f], shared, "PixelValueTransformationSequence", "RescaleIntercept"), h.intercept
        )
        frame_headers.append(dataclasses.replace(h, slope=slope or 1.0, intercept=inter))
        positions.append(
            _vector(_frame_value(per[f], shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
        )
        orientations.append(
            _orientation(_frame_value(per[f], shared, "PlaneOrientationSequence", "ImageOrientationPatient"))
        )
        if spacing is None:
            spacing = parse_spacing(_frame_value(per[f], shared, "PixelMeasuresSequence", "PixelSpacing"))
    if h.position is not None and all(p is None for p in positions) and h.frames == 1:
        positions = [h.position]
    if all(o is None for o in orientations) and h.orientation is not None:
        orientations = [h.orientation] * h.frames
    spacing = spacing or xray_spacing(h)

    warnings: list[str] = []
    have_positions = all(p is not None for p in positions) and all(o is not None for o in orientations)
    same_orientation = have_positions and all(
        np.allclose(o, orientations[0], atol=1e-4) for o in orientations
    )
    if same_orientation:
        if spacing is None:
            warnings.append("no PixelSpacing: 1 mm pixels assumed")
        geo = stack_geometry(np.stack(positions), orientations[0], spacing or (1.0, 1.0))
        warnings += geo.warnings
        jobs = [(frame_headers[f], int(f), slot) for f, slot in zip(geo.order, geo.slots, strict=True)]
        asm = assemble(jobs, geo.n_slots)
        return finish_volume(asm, h, geo.affine, spacing is not None, warnings, str(h.path))

    if have_positions and not same_orientation:
        warnings.append("frames have mixed orientations: shown as a frame stack without patient geometry")
    else:
        warnings.append(
            f"no slice geometry in this {h.frames}-frame file: frames shown as a stack, 1 mm apart"
        )
    jobs = [(frame_headers[f], f, f) for f in range(h.frames)]
    asm = assemble(jobs, h.frames)
    return finish_volume(asm, h, plain_affine(spacing), spacing is not None, warnings, str(h.path))
