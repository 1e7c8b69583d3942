"""Scan preprocessing shared by prepare, training, evaluation and the engine (numpy + torch).

Following the authors (hlip_spec §3) at demo size:

* intensities → [0, 1]: MR (and non-HU CT): clip to the 0.5/99.5 percentiles of the foreground (voxels that
  differ from the corner/background value), min–max, background 0; CT in HU: brain window L 40 / W 80
  ([0, 80] HU → [0, 1]); stored as uint8 ×255.
* geometry: depth resized with ``nearest-exact`` (as the authors), in-plane bilinear (antialiased) to the
  model's H×W — a pure per-axis scaling, no crop, so the heatmap affine is a simple scale + offset
  (see :func:`engines.hlip.engine.token_to_voxel_matrix`). The authors also pad to square and centre-crop
  224/256; our inputs are resized whole.
* network input: ``(x/255 − 0.449) / 0.226``.
"""

from __future__ import annotations

import numpy as np

MEAN, STD = 0.449, 0.226
CT_WINDOW = (0.0, 80.0)


def to_unit(a: np.ndarray, modality: str = "MR") -> np.ndarray:
    """``[K, J, I]`` (any dtype) → float32 in [0, 1] (see the module docstring). ValueError when constant."""
    a = np.asarray(a, dtype=np.float32)
    if modality == "CT" and float(a.min()) < -500.0:
        lo, hi = CT_WINDOW
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    bg = a.flat[0]
    fg = a != bg
    vals = a[fg] if fg.sum() > 0.01 * a.size else a.reshape(-1)
    lo, hi = np.percentile(vals, [0.5, 99.5])
    if not hi > lo:
        raise ValueError("the image has no contrast")
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    out[~fg] = 0.0 if fg.sum() > 0.01 * a.size else out[~fg]
    return out.astype(np.float32)


def resize_scan(a: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """``[K, J, I]`` float → ``[D, H, W]`` float32: depth nearest-exact, in-plane bilinear (antialias)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    d, h, w = size
    if t.shape[0] != d:
        idx = torch.floor((torch.arange(d, dtype=torch.float64) + 0.5) * t.shape[0] / d).long().clamp(max=t.shape[0] - 1)
        t = t[idx]
    if tuple(t.shape[1:]) != (h, w):
        t = F.interpolate(t[:, None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[:, 0]
    return t.numpy()


def to_uint8(a01: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a01 * 255.0), 0, 255).astype(np.uint8)


def network_input(u8: np.ndarray) -> np.ndarray:
    """uint8 (or [0, 255] float) → normalised float32 ``(x/255 − 0.449)/0.226``."""
    return ((np.asarray(u8, dtype=np.float32) / 255.0) - MEAN) / STD


def square_pad(a: np.ndarray) -> np.ndarray:
    """Zero-pad ``[J, I]`` to a centred square ``[S, S]``, ``S = max(J, I)`` (see :func:`pad_offsets`)."""
    j, i = a.shape
    s = max(j, i)
    oj, oi = pad_offsets((j, i))
    out = np.zeros((s, s), dtype=a.dtype)
    out[oj:oj + j, oi:oi + i] = a
    return out


def pad_offsets(shape: tuple[int, int]) -> tuple[int, int]:
    """Row and column offsets ``(oj, oi)`` of a ``[J, I]`` image inside its centred square pad."""
    j, i = shape
    s = max(j, i)
    return (s - j) // 2, (s - i) // 2


def slice_input(grey01: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """A 2D slice in [0, 1] ``[J, I]`` → uint8 ``[1, H, W]``: centred square pad, then bilinear to ``H × W``.

    This is how ``prepare`` makes every head-CT study and how the engine reads a 2D slice (one-slice study).
    """
    return to_uint8(resize_scan(square_pad(np.asarray(grey01, dtype=np.float32))[None], (1, size[1], size[2])))
