"""Slice stacking geometry: sort slices along the normal and build the voxel → LPS affine.

Inputs are DICOM values in patient LPS millimetres: the ImagePositionPatient of every slice (first voxel
centre), the shared ImageOrientationPatient (row cosine = direction of +i, column cosine = direction of +j)
and PixelSpacing = (distance between rows, distance between columns).

* Slices are sorted by ``position · (row × col)``, never by InstanceNumber or file name.
* Spacing comes from the positions, never from SliceThickness.
* The k column of the affine is the actual step vector between slices; when it is not parallel to the normal
  (gantry tilt) the affine is sheared, which places every voxel exactly where the scanner put it.
* A gap that is a whole multiple of the median step (missing slices) gets blank slots so the geometry stays
  exact; other irregular steps use the mean step and a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DUPLICATE_TOL_MM = 1e-3
NONUNIFORM_REL_TOL = 0.02
GAP_FACTOR = 1.5
TILT_TOL_DEG = 0.1


@dataclass
class StackGeometry:
    """Result of :func:`stack_geometry`.

    Attributes:
        order: indices into the input list, sorted along the normal, duplicates removed.
        slots: for each entry of ``order``, its k index in the output array (gaps leave blank slots).
        n_slots: number of k slices in the output array.
        affine: 4×4, voxel (i, j, k, 1) → LPS mm.
        warnings: one-line problems found (missing slices, tilt, duplicates, non-uniform spacing).
    """

    order: list[int]
    slots: list[int]
    n_slots: int
    affine: np.ndarray
    warnings: list[str] = field(default_factory=list)


def in_plane_affine(
    orientation: np.ndarray, spacing_rc: tuple[float, float], origin: np.ndarray
) -> np.ndarray:
    """Affine with i, j columns from the cosines × spacing; k column = unit normal (1 mm); LPS mm."""
    row_cos, col_cos = orientation[:3], orientation[3:]
    aff = np.eye(4)
    aff[:3, 0] = row_cos * spacing_rc[1]  # +i walks along a row: distance between columns
    aff[:3, 1] = col_cos * spacing_rc[0]  # +j walks down a column: distance between rows
    aff[:3, 2] = np.cross(row_cos, col_cos)
    aff[:3, 3] = origin
    return aff


def stack_geometry(
    positions: np.ndarray,
    orientation: np.ndarray,
    spacing_rc: tuple[float, float],
    fallback_step_mm: float = 1.0,
) -> StackGeometry:
    """Sort slices and build the affine from ``positions`` (n, 3) LPS mm sharing ``orientation``."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    normal = np.cross(orientation[:3], orientation[3:])
    dist = positions @ normal
    order = list(np.argsort(dist, kind="stable"))
    warnings: list[str] = []

    # duplicate positions (same place twice: repeated acquisitions, echoes, phases)
    kept = [order[0]]
    for idx in order[1:]:
        same_depth = abs(dist[idx] - dist[kept[-1]]) <= DUPLICATE_TOL_MM  # e.g. offset in plane only
        if np.linalg.norm(positions[idx] - positions[kept[-1]]) > DUPLICATE_TOL_MM and not same_depth:
            kept.append(idx)
    if len(kept) < len(order):
        warnings.append(
            f"{len(order) - len(kept)} slices repeat an earlier slice position; only the first at each "
            "position is shown"
        )
    order = kept
    n = len(order)
    aff = in_plane_affine(orientation, spacing_rc, positions[order[0]])
    if n == 1:
        aff[:3, 2] = normal * fallback_step_mm
        return StackGeometry(order, [0], 1, aff, warnings)

    pos = positions[order]
    steps = np.diff(pos, axis=0)
    along = steps @ normal  # > 0 after sorting
    median = float(np.median(along))
    slots = [0]
    for a in along:
        slots.append(slots[-1] + max(1, int(round(a / median))))
    n_slots = slots[-1] + 1
    measured = (pos - pos[0]) @ normal
    fitted = measured[-1] / slots[-1]  # mean step per slot, robust to rounding in stored positions
    ideal = np.array(slots, dtype=np.float64) * fitted
    regular_multiples = bool(np.all(np.abs(measured - ideal) <= NONUNIFORM_REL_TOL * median + 1e-3))
    gaps = int(np.sum(along > GAP_FACTOR * median))
    if gaps and regular_multiples:
        warnings.append(
            f"{n_slots - n} missing slices in {gaps} gap(s) (median step {median:.3g} mm); blank slices "
            "were inserted to keep the geometry exact"
        )
    elif gaps or not regular_multiples:
        warnings.append(
            f"non-uniform slice spacing: steps from {along.min():.3g} to {along.max():.3g} mm (median "
            f"{median:.3g} mm); the mean step is used, so positions along the stack are approximate"
        )
        slots, n_slots = list(range(n)), n

    step = (pos[-1] - pos[0]) / (n_slots - 1)  # mean step vector, in LPS mm
    aff[:3, 2] = step
    cos_tilt = abs(float(np.dot(step, normal))) / float(np.linalg.norm(step))
    tilt = float(np.degrees(np.arccos(min(1.0, cos_tilt))))
    if tilt > TILT_TOL_DEG:
        warnings.append(
            f"gantry tilt of {tilt:.1f}°: slices are offset along their plane; the sheared affine keeps "
            "every voxel at its scanner position"
        )
    return StackGeometry(order, slots, n_slots, aff, warnings)
