"""Slice preprocessing shared by ``prepare``, ``evaluate`` and the engine (numpy + torch).

Pipeline for one 3D MR volume ``[Z, H, W]`` (any scale: z-scored BRATS 2013 or raw int16 BraTS 2023):

1. :func:`brain_mask`: voxels that differ from the background value (the value of the corner voxels);
   BraTS volumes are skull-stripped, so the background is one constant.
2. :func:`normalise_volume`: clip to the 0.5 / 99.5 percentiles of the brain voxels, scale to [0, 1],
   background 0, then gamma 2 (``y = x ** 2``, as the authors' loader does on 8-bit slices).
3. :func:`slice_boxes`: per axial slice the bounding box of its brain pixels (rows r0:r1, cols c0:c1), grown
   to at least ``MIN_BOX`` = 64 px around its centre (the authors' rule); slices with fewer than
   ``MIN_BRAIN_PX`` brain pixels get no box (they are left empty).
4. :func:`crop_slices`: each box resized bilinearly to ``size × size`` (128) → float32 ``[N, size, size]``.
5. :func:`paste_back`: a per-slice probability map (any square size) resized bilinearly to its box and
   written into a ``[Z, H, W]`` array on the input grid (zeros elsewhere).
"""

from __future__ import annotations

import numpy as np

MIN_BOX = 64
MIN_BRAIN_PX = 400
SIZE = 128
GAMMA = 2.0
TUMOUR_PX = 200  # a slice is "tumour" when it has more whole-tumour pixels than this


def brain_mask(vol: np.ndarray) -> np.ndarray:
    """bool ``[Z, H, W]``: voxels that differ from the background (the most common corner value)."""
    corners = np.array([vol[z, y, x] for z in (0, -1) for y in (0, -1) for x in (0, -1)], dtype=np.float64)
    vals, counts = np.unique(corners, return_counts=True)
    bg = vals[np.argmax(counts)]
    scale = max(1e-6, float(np.abs(vol).max()) * 1e-6)
    return np.abs(vol.astype(np.float32) - np.float32(bg)) > scale


def normalise_volume(vol: np.ndarray, brain: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """float32 ``[Z, H, W]`` in [0, 1]: percentile-clipped brain intensities to the power ``gamma``."""
    v = vol[brain].astype(np.float32)
    if v.size < 10:
        raise ValueError("no brain voxels found")
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        raise ValueError("the brain region has no contrast")
    # in place, in float64 (``lo``/``hi`` are float64, as the prepared training data were computed)
    out = vol.astype(np.float64)
    out -= lo
    out /= hi - lo
    np.clip(out, 0.0, 1.0, out=out)
    out[~brain] = 0.0
    if gamma == 2.0:
        np.square(out, out=out)
    else:
        np.power(out, gamma, out=out)
    return out.astype(np.float32)


def slice_boxes(brain: np.ndarray, min_box: int = MIN_BOX, min_px: int = MIN_BRAIN_PX) -> np.ndarray:
    """int32 ``[Z, 4]`` boxes ``(r0, r1, c0, c1)`` (end exclusive); ``-1`` rows for slices without brain."""
    z, h, w = brain.shape
    boxes = np.full((z, 4), -1, dtype=np.int32)
    for k in range(z):
        m = brain[k]
        if m.sum() < min_px:
            continue
        rows = np.nonzero(m.any(1))[0]
        cols = np.nonzero(m.any(0))[0]
        r0, r1 = _grow(int(rows[0]), int(rows[-1]) + 1, min_box, h)
        c0, c1 = _grow(int(cols[0]), int(cols[-1]) + 1, min_box, w)
        boxes[k] = (r0, r1, c0, c1)
    return boxes


def _grow(a: int, b: int, n: int, limit: int) -> tuple[int, int]:
    if b - a >= n or limit < n:
        return a, b
    c = (a + b) // 2
    a = max(0, min(c - n // 2, limit - n))
    return a, a + n


def crop_slices(vol01: np.ndarray, boxes: np.ndarray, size: int = SIZE) -> np.ndarray:
    """float32 ``[N, size, size]`` crops of the slices that have a box (``boxes[:, 0] >= 0``), in order."""
    import torch
    import torch.nn.functional as F

    out = []
    for k in np.nonzero(boxes[:, 0] >= 0)[0]:
        r0, r1, c0, c1 = boxes[k]
        t = torch.from_numpy(np.ascontiguousarray(vol01[k, r0:r1, c0:c1], dtype=np.float32))[None, None]
        out.append(F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy())
    return np.stack(out) if out else np.zeros((0, size, size), np.float32)


def crop_masks(mask: np.ndarray, boxes: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8 ``[N, size, size]``: binary masks cropped like :func:`crop_slices` (bilinear, then > 0.5)."""
    return (crop_slices(mask.astype(np.float32), boxes, size) > 0.5).astype(np.uint8)


def paste_back(maps: np.ndarray, boxes: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """float32 ``[Z, H, W]``: ``maps[i]`` (``[N, s, s]``, one per boxed slice in order) resized into its box."""
    import torch
    import torch.nn.functional as F

    out = np.zeros(shape, np.float32)
    idx = np.nonzero(boxes[:, 0] >= 0)[0]
    if len(idx) != len(maps):
        raise ValueError(f"{len(maps)} maps for {len(idx)} boxed slices")
    for m, k in zip(maps, idx, strict=True):
        r0, r1, c0, c1 = boxes[k]
        t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
        out[k, r0:r1, c0:c1] = F.interpolate(t, size=(int(r1 - r0), int(c1 - c0)), mode="bilinear",
                                             align_corners=False)[0, 0].numpy()
    return out
