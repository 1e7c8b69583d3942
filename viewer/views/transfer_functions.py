"""Volume-rendering transfer functions: the presets (CT bone, CT soft tissue, MR scaled to the image) and what
they make visible (the camera frames that)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.model.volume import Volume
from viewer.views.vtk_grid import patient_bounds

PRESETS = ("ct_bone", "ct_soft_tissue", "mr")


@dataclass(frozen=True)
class TransferFunction:
    """Volume-rendering transfer function in the image's value units (HU for CT).

    ``opacity`` is per unit length of 1 mm (VTK's scalar opacity unit distance is set to 1 mm).
    """

    colour: tuple[tuple[float, float, float, float], ...]  # (value, r, g, b) with r, g, b in [0, 1]
    opacity: tuple[tuple[float, float], ...]               # (value, opacity)
    shade: bool = True
    ambient: float = 0.25
    diffuse: float = 0.8
    specular: float = 0.2


def robust_range(volume: Volume, low_pct: float = 2.0, high_pct: float = 99.5) -> tuple[float, float]:
    """Percentiles of the foreground (values above the minimum) from a ≤ ~1 M voxel subsample."""
    a = volume.data3d
    step = max(1, round((a.size / 1_000_000) ** (1 / 3)))
    s = np.asarray(a[::step, ::step, ::step], dtype=np.float32).reshape(-1)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return 0.0, 1.0
    fg = s[s > s.min()]
    if fg.size < 0.01 * s.size:
        fg = s
    lo, hi = np.percentile(fg, [low_pct, high_pct])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def preset_transfer_function(name: str, volume: Volume) -> TransferFunction:
    """The transfer function of preset ``name`` ("ct_bone", "ct_soft_tissue" or "mr") for ``volume``.

    The CT presets use fixed Hounsfield units; "mr" is scaled to the image's robust foreground range, so it
    also serves images of unknown units.
    """
    if name == "ct_bone":
        return TransferFunction(
            colour=((-1000, 0.0, 0.0, 0.0), (140, 0.55, 0.25, 0.15), (250, 0.88, 0.62, 0.35),
                    (600, 1.0, 0.92, 0.80), (1500, 1.0, 1.0, 0.95)),
            opacity=((-1000, 0.0), (140, 0.0), (250, 0.15), (500, 0.55), (1200, 0.85), (3000, 0.9)),
            specular=0.3)
    if name == "ct_soft_tissue":
        return TransferFunction(
            colour=((-1000, 0.0, 0.0, 0.0), (-500, 0.55, 0.25, 0.15), (-100, 0.90, 0.70, 0.50),
                    (40, 0.80, 0.30, 0.25), (200, 0.95, 0.75, 0.60), (400, 1.0, 0.95, 0.88),
                    (1500, 1.0, 1.0, 1.0)),
            opacity=((-1000, 0.0), (-600, 0.0), (-400, 0.004), (-100, 0.006), (20, 0.02), (80, 0.06),
                     (250, 0.3), (600, 0.8), (3000, 0.9)),
            ambient=0.3, diffuse=0.75, specular=0.15)
    if name == "mr":
        lo, hi = robust_range(volume)
        w = hi - lo
        return TransferFunction(
            colour=((lo, 0.0, 0.0, 0.0), (lo + 0.12 * w, 0.55, 0.50, 0.47), (lo + 0.5 * w, 0.92, 0.88, 0.84),
                    (hi, 1.0, 1.0, 1.0)),
            opacity=((lo, 0.0), (lo + 0.1 * w, 0.0), (lo + 0.25 * w, 0.02), (lo + 0.5 * w, 0.05),
                     (hi, 0.12)),
            ambient=0.35, diffuse=0.7, specular=0.1)
    raise KeyError(f"unknown preset {name!r}; choose one of {PRESETS}")


def visible_from(tf: TransferFunction) -> float:
    """The value above which ``tf`` makes voxels visible (the last zero-opacity point before any opacity)."""
    start = tf.opacity[0][0]
    for v, o in tf.opacity:
        if o > 0:
            break
        start = v
    return float(start)


def content_bounds(volume: Volume, threshold: float, max_samples: int = 500_000
                   ) -> tuple[float, float, float, float, float, float] | None:
    """LPS mm bounds of the voxels above ``threshold`` (from a strided subsample); None when there are none.

    The subsampled voxels' own patient positions are bounded (not an index box), so oblique grids give
    tight bounds; the result is grown by one stride on each side.
    """
    a = volume.data3d
    step = max(1, round((a.size / max_samples) ** (1 / 3)))
    sub = a[::step, ::step, ::step]
    kji = np.argwhere(sub > threshold)
    if kji.size == 0:
        return None
    p = volume.index_to_patient(kji[:, ::-1].astype(np.float64) * step)
    pad = step * max(volume.spacing)
    mn, mx = p.min(0) - pad, p.max(0) + pad
    full = np.array(patient_bounds(volume)).reshape(3, 2)
    mn, mx = np.maximum(mn, full[:, 0]), np.minimum(mx, full[:, 1])
    return float(mn[0]), float(mx[0]), float(mn[1]), float(mx[1]), float(mn[2]), float(mx[2])


def default_preset(volume: Volume) -> str:
    """"ct_bone" for CT, "mr" otherwise (the range-scaled preset)."""
    return "ct_bone" if volume.modality.upper() == "CT" else "mr"
