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

    When the overlay shares the base grid the slice is taken directly. Otherwise each screen pixel's centre
    is carried base voxel → patient → overlay voxel and sampled with nearest neighbour (labels, ``order=0``)
    or (tri)linear interpolation (heatmaps, ``order=1``). A point inside an overlay voxel's extent
    (index −0.5 … n−0.5) takes its value (interpolation clamps at the edge voxels); outside → ``fill``.

    Grids whose axes are parallel to the base's (the usual case: an engine's output on a coarser or cropped
    copy of its input grid) are sampled separably — 1D index arrays per screen axis and ``np.ix_`` gathers,
    a few milliseconds per 512² slice; oblique grids fall back to a per-pixel ``map_coordinates``.
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

    @cached_property
    def _feeds(self) -> list[int] | None:
        """For each overlay voxel axis, the base voxel axis it depends on — or None when the grids are oblique
        to each other (some overlay axis depends on two base axes)."""
        t = self._base_to_overlay[:3, :3]
        scale = np.abs(t).max(axis=1, keepdims=True)
        big = np.abs(t) > 1e-6 * np.maximum(scale, 1e-12)
        if not np.all(big.sum(axis=1) == 1):
            return None
        feeds = [int(np.argmax(big[v])) for v in range(3)]
        return feeds if sorted(feeds) == [0, 1, 2] else None

    @property
    def axis_parallel(self) -> bool:
        """Whether the overlay's axes are parallel to the base's (any order, flips and scales)."""
        return self._feeds is not None

    def sample(self, slice_index: int) -> np.ndarray:
        """The overlay on the displayed slice, ``[row, col]`` in screen order."""
        if self.same_grid:
            return self.mapping.extract(self.overlay.data3d, slice_index)
        if self._feeds is not None:
            return self._sample_separable(slice_index)
        return self._sample_general(slice_index)

    # ---- axis-parallel grids ----------------------------------------------------------------------------
    def _base_coords(self, slice_index: int) -> dict[int, np.ndarray]:
        """Base voxel coordinate along each base axis: 1D over cols / rows, a 1-element array for the slice."""
        m = self.mapping
        rows, cols = m.screen_shape
        c = np.arange(cols, dtype=np.float64)
        r = np.arange(rows, dtype=np.float64)
        return {m.col_axis: (cols - 1 - c) if m.col_flip else c,
                m.row_axis: (rows - 1 - r) if m.row_flip else r,
                m.slice_axis: np.array([float(slice_index)])}

    def _sample_separable(self, slice_index: int) -> np.ndarray:
        m, t, data = self.mapping, self._base_to_overlay, self.overlay.data3d
        base = self._base_coords(slice_index)
        n_over = (data.shape[2], data.shape[1], data.shape[0])  # sizes along overlay (i, j, k)
        # per overlay axis (in array order k, j, i): sample positions, weights and a validity mask
        idx, weights, valid, screen_role = [], [], [], []
        for v in (2, 1, 0):
            b = self._feeds[v]
            o = t[v, b] * base[b] + t[v, 3]
            n = n_over[v]
            ok = (o >= -0.5) & (o <= n - 0.5)
            if self.order == 0:
                lo = np.clip(np.floor(o + 0.5).astype(np.intp), 0, n - 1)
                idx.append((lo, lo))
                weights.append(np.zeros_like(o))
            else:
                oc = np.clip(o, 0, n - 1)
                lo = np.floor(oc).astype(np.intp)
                hi = np.minimum(lo + 1, n - 1)
                idx.append((lo, hi))
                weights.append(oc - lo)
            valid.append(ok)
            screen_role.append("col" if b == m.col_axis else "row" if b == m.row_axis else "slice")
        rows, cols = m.screen_shape
        out = np.zeros((rows, cols), np.float32) if self.order else None
        # the slice axis is a single position: take one (nearest) or two (linear) overlay planes
        s_pos = screen_role.index("slice")
        corners = (0,) if self.order == 0 else (0, 1)
        for cs in corners:
            ws = weights[s_pos][0] if cs else 1 - weights[s_pos][0]
            if self.order and ws == 0:
                continue
            plane = np.take(data, idx[s_pos][cs][0], axis=s_pos)  # 2D: remaining overlay axes in array order
            others = [a for a in range(3) if a != s_pos]
            for cr in corners:
                for cc in corners:
                    pick = {a: idx[a][cr if screen_role[a] == "row" else cc] for a in others}
                    w = {a: (weights[a] if (cr if screen_role[a] == "row" else cc) else 1 - weights[a])
                         for a in others}
                    g = plane[np.ix_(pick[others[0]], pick[others[1]])]
                    if screen_role[others[0]] == "col":
                        g = g.T
                    if self.order == 0:
                        result = g
                    else:
                        r_axis = others[0] if screen_role[others[0]] == "row" else others[1]
                        c_axis = others[1] if r_axis == others[0] else others[0]
                        out += (ws * w[r_axis][:, None] * w[c_axis][None, :] * g).astype(np.float32)
        if self.order == 0:
            out = np.array(result, copy=True)
        r_ok = valid[screen_role.index("row")]
        c_ok = valid[screen_role.index("col")]
        inside = r_ok[:, None] & c_ok[None, :] & bool(valid[s_pos][0])
        if not inside.all():
            out = out.astype(np.result_type(out.dtype, np.min_scalar_type(self.fill)) if self.order == 0
                             else np.float32, copy=False)
            out[~inside] = self.fill
        return out

    def native_slice(self, slice_index: int) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
        """The overlay's own pixels on the displayed slice, for drawing scaled (axis-parallel grids only).

        Returns ``(image [rows', cols'] in screen orientation, (x, y, w, h))`` where the rectangle is in
        continuous screen-pixel units of the base view (pixel (c, r) centred at (c + ½, r + ½)), or None when
        the slice misses the overlay. Along the slice normal the overlay is interpolated between its two
        nearest planes (``order=1``) or takes the nearest one (``order=0``).
        """
        if self._feeds is None:
            raise ValueError("native_slice needs an overlay grid parallel to the base grid")
        m, t, data = self.mapping, self._base_to_overlay, self.overlay.data3d
        base = self._base_coords(slice_index)
        n_over = (data.shape[2], data.shape[1], data.shape[0])
        role = {}
        for v in range(3):
            b = self._feeds[v]
            role["col" if b == m.col_axis else "row" if b == m.row_axis else "slice"] = v
        v_s = role["slice"]
        o_s = float(t[v_s, self._feeds[v_s]] * base[self._feeds[v_s]][0] + t[v_s, 3])
        n_s = n_over[v_s]
        if not -0.5 <= o_s <= n_s - 0.5:
            return None
        axis_s = 2 - v_s  # array axis
        if self.order == 0:
            plane = np.take(data, min(n_s - 1, max(0, int(np.floor(o_s + 0.5)))), axis=axis_s)
        else:
            oc = min(max(o_s, 0.0), n_s - 1.0)
            lo = int(np.floor(oc))
            hi = min(lo + 1, n_s - 1)
            w = oc - lo
            plane = np.take(data, lo, axis=axis_s)
            if w > 1e-6:
                plane = (1 - w) * plane.astype(np.float32) + w * np.take(data, hi, axis=axis_s).astype(np.float32)
        # remaining array axes, in order; make rows follow the row-fed overlay axis
        remaining = [a for a in range(3) if a != axis_s]
        if remaining[0] != 2 - role["row"]:
            plane = plane.T
        rect = []
        for name, screen_n in (("col", m.screen_shape[1]), ("row", m.screen_shape[0])):
            v = role[name]
            b = self._feeds[v]
            flip = m.col_flip if name == "col" else m.row_flip
            # o = alpha * screen + beta, from base index b = screen (or n-1-screen when flipped)
            alpha = t[v, b] * (-1 if flip else 1)
            beta = t[v, 3] + (t[v, b] * (screen_n - 1) if flip else 0.0)
            e0, e1 = (-0.5 - beta) / alpha, (n_over[v] - 0.5 - beta) / alpha
            if alpha < 0:
                plane = plane[:, ::-1] if name == "col" else plane[::-1]
            rect.append((min(e0, e1) + 0.5, abs(e1 - e0)))
        (x, w_), (y, h_) = rect
        return plane, (x, y, w_, h_)

    # ---- oblique grids ------------------------------------------------------------------------------------
    def _sample_general(self, slice_index: int) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        m = self.mapping
        rows, cols = m.screen_shape
        rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        ijk = m.screen_to_index(slice_index, cc, rr).reshape(-1, 3)
        t = self._base_to_overlay
        oijk = ijk @ t[:3, :3].T + t[:3, 3]
        data = self.overlay.data3d
        coords = oijk[:, ::-1].T  # array order (k, j, i)
        shape = np.array(data.shape[:3])[:, None]
        inside = np.all((coords >= -0.5) & (coords <= shape - 0.5), axis=0)
        if self.order == 0:
            idx = np.clip(np.floor(coords + 0.5).astype(np.intp), 0, shape - 1)
            out = np.full(idx.shape[1], self.fill, dtype=np.result_type(data.dtype, np.min_scalar_type(self.fill)))
            out[inside] = data[idx[0, inside], idx[1, inside], idx[2, inside]]
            return out.reshape(rows, cols)
        clamped = np.clip(coords, 0, shape - 1)
        out = map_coordinates(np.asarray(data, dtype=np.float32), clamped, order=1, mode="nearest", prefilter=False)
        out[~inside] = self.fill
        return out.reshape(rows, cols).astype(np.float32, copy=False)
