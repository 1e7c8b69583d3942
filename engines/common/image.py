"""Image helpers the engines share (numpy, torch for resizing): grey conversion, robust normalisation,
square resizing, and min-max scaling of output maps."""

from __future__ import annotations

import numpy as np

from engines.errors import EngineError

P_LOW, P_HIGH = 0.5, 99.5


def to_grey(array: np.ndarray, rgb: bool) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3|4]`` (when ``rgb``) → float32 ``[H, W]`` (ITU-R BT.601 luma for colour)."""
    a = np.asarray(array)
    if rgb:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return a.astype(np.float32, copy=False)


def normalise(grey: np.ndarray) -> np.ndarray:
    """Robust intensity scaling: the 0.5th/99.5th percentiles → 0/1, clipped. ``[H, W]`` → float32 ``[H, W]``.

    Raises:
        ValueError: when the image has no contrast (the percentiles coincide).
    """
    lo, hi = np.percentile(grey, [P_LOW, P_HIGH])
    if not hi > lo:
        lo, hi = float(grey.min()), float(grey.max())
    if not hi > lo:
        raise ValueError("the image is constant (no contrast)")
    return np.clip((grey - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of ``[H, W]`` to ``[size, size]`` (torch), float32."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary ``[H, W]`` → uint8 ``[size, size]`` (area-average, then ≥ 0.5)."""
    return (resize_square(mask.astype(np.float32), size) >= 0.5).astype(np.uint8)


def unit_map(m: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A map min-max scaled to [0, 1] as float32 (all zeros when constant), with its raw (low, high)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    norm = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return norm.astype(np.float32), lo, hi


def radiograph01(array: np.ndarray, rgb: bool, title: str, min_side: int, purpose: str = "analyse") -> np.ndarray:
    """One 2D radiograph (grey or colour ``[H, W(, C)]``) → grey float32 ``[H, W]`` in [0, 1] (:func:`normalise`).

    Raises:
        EngineError: not one 2D image, NaN/Inf, smaller than ``min_side`` pixels, or constant — in plain words,
            naming the engine ``title`` and what it would ``purpose`` (e.g. "analyse", "ground").
    """
    grey = to_grey(array, rgb)
    if grey.ndim != 2:
        raise EngineError(f"{title} takes one 2D radiograph; this array has shape {np.shape(array)}.")
    if not np.all(np.isfinite(grey)):
        raise EngineError("The input image contains NaN or infinite values.")
    if min(grey.shape) < min_side:
        raise EngineError(f"The image is too small ({grey.shape[1]}×{grey.shape[0]} px); "
                          f"{title} needs at least {min_side} px per side.")
    try:
        return normalise(grey)
    except ValueError as exc:
        raise EngineError(f"The image is constant (no contrast); nothing to {purpose} ({exc}).") from exc
