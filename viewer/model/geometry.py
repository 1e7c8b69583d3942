"""Display geometry: which voxel axes a view shows, in which direction, and how to sample overlays.

Lucent shows volumes on their own voxel grid, re-oriented to the nearest anatomical axes (as ITK-SNAP
does), in the radiological convention:

==========  =====================  ======================  ============
plane       screen x grows toward  screen y (down) toward  slice normal
==========  =====================  ======================  ============
axial       patient Left           Posterior               S
coronal     patient Left           Inferior                P
sagittal    Posterior              Inferior                L
native      column i               row j                   k
==========  =====================  ======================  ============

So patient right is on screen left in axial and coronal views, anterior is up in axial, the head is up in
coronal and sagittal, and the face looks left in sagittal. ``native`` shows a 2D image as stored.
Voxel and patient conventions are those of :mod:`viewer.model.volume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from viewer.model.volume import Volume

PLANES = ("axial", "coronal", "sagittal")

# plane -> ((patient axis, sign) along screen x, (patient axis, sign) along screen y); axes 0=L 1=P 2=S
_PLANE_AXES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "axial": ((0, +1), (1, +1)),
    "coronal": ((0, +1), (2, -1)),
    "sagittal": ((1, +1), (2, -1)),
}
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) direction per LPS axis


def nearest_patient_axes(affine: np.ndarray) -> tuple[int, int, int]:
    """For each patient axis (L, P, S), the voxel axis (0=i, 1=j, 2=k) that points most nearly along it.

    Greedy on the largest absolute direction cosine, so every voxel axis is used exactly once even for
    oblique acquisitions.
    """
    cos = np.abs(affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0))  # [patient axis, voxel axis]
    out = [-1, -1, -1]
    work = cos.copy()
    for _ in range(3):
        p, v = np.unravel_index(np.argmax(work), work.shape)
        out[p] = int(v)
        work[p, :] = -1
        work[:, v] = -1
    return out[0], out[1], out[2]


def direction_letters(direction: np.ndarray, threshold: float = 0.3) -> str:
    """Orientation letters for a patient LPS direction, main component first ("L", "PS", …)."""
    d = np.asarray(direction, dtype=float)
    d = d / (np.linalg.norm(d) or 1.0)
    order = np.argsort(-np.abs(d))
    letters = [_LETTERS[a][int(d[a] > 0)] for a in order if abs(d[a]) >= threshold]
    return "".join(letters) or _LETTERS[order[0]][int(d[order[0]] > 0)]


@dataclass(frozen=True)
class SliceMapping:
    """How one view maps a volume's voxels onto screen pixels.

    Screen pixel (col, row) of slice ``s`` is voxel index v with ``v[slice_axis] = s``,
    ``v[col_axis] = col`` (or ``n-1-col`` when ``col_flip``), ``v[row_axis] = row`` (likewise).
    """

    plane: str
    shape3d: tuple[int, int, int]  # (nk, nj, ni)
    slice_axis: int
    col_axis: int
    row_axis: int
    col_flip: bool
    row_flip: bool
    spacing: tuple[float, float, float]  # mm along (i, j, k)

    @classmethod
    def for_volume(cls, volume: Volume, plane: str) -> SliceMapping:
        """Mapping for ``plane`` ("axial", "coronal", "sagittal" or "native") of ``volume``."""
        if plane == "native":
            return cls(plane, volume.shape3d, 2, 0, 1, False, False, volume.spacing)
        if plane not in _PLANE_AXES:
            raise ValueError(f"unknown plane {plane!r}")
        nearest = nearest_patient_axes(volume.affine)
        (px, sx), (py, sy) = _PLANE_AXES[plane]
        col_axis, row_axis = nearest[px], nearest[py]
        slice_axis = 3 - col_axis - row_axis
        a = volume.affine
        col_flip = np.sign(a[px, col_axis]) * sx < 0
        row_flip = np.sign(a[py, row_axis]) * sy < 0
        return cls(plane, volume.shape3d, slice_axis, col_axis, row_axis, bool(col_flip), bool(row_flip),
                   volume.spacing)

    # ---- sizes ---------------------------------------------------------------------------------------
    def _n(self, voxel_axis: int) -> int:
        return self.shape3d[2 - voxel_axis]

    @property
    def n_slices(self) -> int:
        return self._n(self.slice_axis)

    @property
    def screen_shape(self) -> tuple[int, int]:
        """(rows, cols) of the displayed slice."""
        return self._n(self.row_axis), self._n(self.col_axis)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Displayed pixel size in mm as (width along screen x, height along screen y)."""
        return self.spacing[self.col_axis], self.spacing[self.row_axis]

    # ---- sampling ------------------------------------------------------------------------------------
    def extract(self, data3d: np.ndarray, slice_index: int) -> np.ndarray:
        """The displayed 2D slice ``[row, col]`` (plus a channel axis for colour): a view, not a copy."""
        sl: list[object] = [slice(None)] * 3
        sl[2 - self.slice_axis] = int(slice_index)
        img = data3d[tuple(sl)]
        # remaining array axes hold voxel axes in descending order; make rows = row_axis
        remaining = sorted({0, 1, 2} - {self.slice_axis}, reverse=True)
        if remaining[0] != self.row_axis:
            img = np.swapaxes(img, 0, 1)
        if self.row_flip:
            img = img[::-1]
        if self.col_flip:
            img = img[:, ::-1]
        return img

    def screen_to_index(self, slice_index: float, col: float, row: float) -> np.ndarray:
        """Screen pixel (col, row) on slice ``slice_index`` → voxel (i, j, k); arrays broadcast."""
        col = np.asarray(col, dtype=float)
        row = np.asarray(row, dtype=float)
        c = (self._n(self.col_axis) - 1 - col) if self.col_flip else col
        r = (self._n(self.row_axis) - 1 - row) if self.row_flip else row
        s = np.broadcast_to(np.asarray(slice_index, dtype=float), np.broadcast(c, r).shape)
        out = np.empty(np.broadcast(c, r).shape + (3,))
        out[..., self.col_axis] = c
        out[..., self.row_axis] = r
        out[..., self.slice_axis] = s
        return out

    def index_to_screen(self, ijk: np.ndarray) -> tuple[float, float, float]:
        """Voxel (i, j, k) → (slice index, col, row) of this view (continuous)."""
        ijk = np.asarray(ijk, dtype=float)
        c, r = ijk[self.col_axis], ijk[self.row_axis]
        if self.col_flip:
            c = self._n(self.col_axis) - 1 - c
        if self.row_flip:
            r = self._n(self.row_axis) - 1 - r
        return float(ijk[self.slice_axis]), float(c), float(r)

    def screen_directions(self, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Patient LPS unit directions of screen +x (right) and +y (down)."""
        dx = affine[:3, self.col_axis] * (-1 if self.col_flip else 1)
        dy = affine[:3, self.row_axis] * (-1 if self.row_flip else 1)
        return dx / np.linalg.norm(dx), dy / np.linalg.norm(dy)

    def edge_letters(self, affine: np.ndarray) -> dict[str, str]:
        """Orientation letters for the view's edges: keys "left", "right", "top", "bottom"."""
        dx, dy = self.screen_directions(affine)
        return {"left": direction_letters(-dx), "right": direction_letters(dx),
                "top": direction_letters(-dy), "bottom": direction_letters(dy)}


class OverlaySampler:
    """Samples an overlay volume on the screen pixels of a base volume's view, slice by slice.

    When the overlay shares the base grid the slice is taken directly; otherwise each screen pixel's
    centre is carried base voxel → patient → overlay voxel and sampled with nearest neighbour (labels,
    ``order=0``) or trilinear interpolation (heatmaps, ``order=1``). Outside the overlay → ``fill``.
    """

    def __init__(self, base: Volume, overlay: Volume, mapping: SliceMapping, order: int, fill: float = 0.0):
        self.base, self.overlay, self.mapping, self.order, self.fill = base, overlay, mapping, order, fill

    @cached_property
    def same_grid(self) -> bool:
        return self.base.shape3d == self.overlay.shape3d and np.allclose(
            self.base.affine, self.overlay.affine, atol=1e-4)

    @cached_property
    def _base_to_overlay(self) -> np.ndarray:
        return np.linalg.inv(self.overlay.affine) @ self.base.affine

    def sample(self, slice_index: int) -> np.ndarray:
        """The overlay on the displayed slice, ``[row, col]`` in screen order, float32 or original."""
        m = self.mapping
        if self.same_grid:
            return m.extract(self.overlay.data3d, slice_index)
        from scipy.ndimage import map_coordinates

        rows, cols = m.screen_shape
        rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        ijk = m.screen_to_index(slice_index, cc, rr).reshape(-1, 3)
        t = self._base_to_overlay
        oijk = ijk @ t[:3, :3].T + t[:3, 3]
        data = self.overlay.data3d
        coords = oijk[:, ::-1].T  # array order (k, j, i)
        if self.order == 0:
            idx = np.rint(coords).astype(np.intp)
            shape = np.array(data.shape[:3])[:, None]
            inside = np.all((idx >= 0) & (idx < shape), axis=0)
            out = np.full(idx.shape[1], self.fill, dtype=data.dtype)
            out[inside] = data[idx[0, inside], idx[1, inside], idx[2, inside]]
            return out.reshape(rows, cols)
        out = map_coordinates(np.asarray(data, dtype=np.float32), coords, order=self.order, mode="constant",
                              cval=self.fill, prefilter=False)
        return out.reshape(rows, cols).astype(np.float32, copy=False)
