"""Colour maps as 256×4 uint8 RGBA lookup tables, and the one way a map is coloured (Qt-free).

:func:`heatmap_rgba` is the single colour mapping of a heatmap — colour map over a value range, transparent
below the threshold, faded by the opacity — used by the screen (the same table and indices, through the image
item's lookup table and opacity), by exported screenshots and by ``lucent infer``'s PNGs. :func:`blend_over`
lays such an RGBA image over the film.

Continuous maps are piecewise-linear through published control points (matplotlib's inferno/viridis
sampled at nine points, the classic jet and hot ramps). ``labels`` is a categorical table: index 0 is
transparent background, 1–4 follow the BraTS convention colours, further labels cycle a palette.
"""

from __future__ import annotations

from functools import cache

import numpy as np

_CONTROL_POINTS: dict[str, list[tuple[int, int, int]]] = {
    "grey": [(0, 0, 0), (255, 255, 255)],
    "hot": [(0, 0, 0), (230, 0, 0), (255, 210, 0), (255, 255, 255)],
    "inferno": [(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85), (227, 89, 51),
                (249, 140, 10), (249, 201, 50), (252, 255, 164)],
    "viridis": [(68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
                (94, 201, 98), (173, 220, 48), (253, 231, 37)],
    "jet": [(0, 0, 128), (0, 0, 255), (0, 128, 255), (0, 255, 255), (128, 255, 128), (255, 255, 0),
            (255, 128, 0), (255, 0, 0), (128, 0, 0)],
}
CONTINUOUS = tuple(_CONTROL_POINTS)

_LABEL_PALETTE = [(255, 60, 60), (60, 200, 60), (255, 220, 40), (60, 120, 255), (230, 80, 230),
                  (40, 220, 220), (255, 150, 40), (160, 100, 255), (150, 255, 150), (255, 150, 190)]
_BRATS = {1: (255, 60, 60), 2: (60, 200, 60), 3: (60, 120, 255), 4: (255, 220, 40)}


@cache
def lut(name: str) -> np.ndarray:
    """256×4 RGBA uint8 table for ``name``; raises KeyError for an unknown name."""
    if name == "labels":
        return label_lut()
    pts = np.asarray(_CONTROL_POINTS[name], dtype=float)
    x = np.linspace(0, 1, len(pts))
    t = np.linspace(0, 1, 256)
    rgb = np.stack([np.interp(t, x, pts[:, c]) for c in range(3)], axis=1)
    out = np.empty((256, 4), np.uint8)
    out[:, :3] = np.rint(rgb).astype(np.uint8)
    out[:, 3] = 255
    out.setflags(write=False)
    return out


def label_colour(value: int) -> tuple[int, int, int]:
    """RGB colour of label ``value`` (> 0)."""
    return _BRATS.get(value, _LABEL_PALETTE[(value - 1) % len(_LABEL_PALETTE)])


@cache
def label_lut() -> np.ndarray:
    """Categorical 256×4 table: 0 transparent, ``n`` → :func:`label_colour`."""
    out = np.zeros((256, 4), np.uint8)
    for v in range(1, 256):
        out[v, :3] = label_colour(v)
        out[v, 3] = 255
    out.setflags(write=False)
    return out


@cache
def indexed_lut(name: str) -> np.ndarray:
    """256×4 RGBA table for :func:`to_indices`: entry 0 transparent, 1–255 colour map ``name`` from low to high."""
    out = np.zeros((256, 4), np.uint8)
    out[1:] = lut(name)[np.rint(np.linspace(0, 255, 255)).astype(np.intp)]
    out.setflags(write=False)
    return out


def to_indices(values: np.ndarray, low: float, high: float, threshold: float | None = None) -> np.ndarray:
    """``values`` → uint8 indices into :func:`indexed_lut`: [low, high] → 1…255 (clipped outside), and 0
    (transparent) for NaN, ±Inf and values below ``threshold``. A 2D slice costs one float pass, no RGBA image."""
    v = np.asarray(values, dtype=np.float32)
    scale = np.float32(254.0 / (high - low) if high > low else 0.0)
    t = np.subtract(v, np.float32(low))
    t *= scale
    np.clip(t, 0.0, 254.0, out=t)
    t += np.float32(1.5)  # round half up onto 1…255
    hidden = ~np.isfinite(v)
    if threshold is not None:
        hidden |= v < threshold
    t[hidden] = 0.0
    return t.astype(np.uint8)


def heatmap_rgba(values: np.ndarray, colormap: str, value_range: tuple[float, float],
                 threshold: float | None = None, opacity: float = 1.0) -> np.ndarray:
    """The colours of a heatmap: ``values`` (any float array, the map's own units) → RGBA uint8 ``[..., 4]``.

    [low, high] of ``value_range`` runs through ``colormap``; values below ``threshold``, NaN and ±Inf are fully
    transparent; every coloured value has alpha ``opacity`` (0–1). The screen draws exactly
    ``indexed_lut(colormap)[to_indices(values, low, high, threshold)]`` at the layer's opacity.
    """
    low, high = (float(v) for v in value_range)
    rgba = indexed_lut(colormap)[to_indices(values, low, high, threshold)]
    rgba[..., 3] = np.rint(rgba[..., 3] * float(np.clip(opacity, 0.0, 1.0))).astype(np.uint8)
    return rgba


def labels_rgba(labels: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Integer labels → RGBA uint8 ``[..., 4]`` through :func:`label_lut` (0 transparent), alpha ``opacity``."""
    idx = np.asarray(np.nan_to_num(labels), dtype=np.int64) % 256
    rgba = label_lut()[idx.astype(np.uint8)]
    rgba[..., 3] = np.rint(rgba[..., 3] * float(np.clip(opacity, 0.0, 1.0))).astype(np.uint8)
    return rgba


def blend_over(film: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """``rgba`` (``[H, W, 4]`` uint8, straight alpha) composited over ``film`` (``[H, W, 3]`` uint8) → uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = film.astype(np.float32) * (1.0 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
