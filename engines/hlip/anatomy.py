"""Head / brain masks from intensity: where HLIP's heatmap may be drawn (numpy + scipy.ndimage, engine side only).

The heatmap is shown only inside the anatomy the model looks at, never on empty background:

* skull-stripped MRI (BRATS-like): every voxel that differs from the background value (the corner voxel);
* CT in Hounsfield units: voxels above −300 HU (soft tissue and bone, not air);
* 8-bit slices (the head-CT PNGs, already windowed): grey above half the Otsu threshold (at least 6 % of full
  scale) — some figures have a grey, not black, background;

then, for CT and 8-bit slices, the largest connected component is kept (labels or marks beside the head drop out)
and, per axial slice, its holes are filled, so that dark CSF or ventricles inside the head stay inside (a
skull-stripped MRI's foreground already is the brain, holes and all). Arrays are ``[K, J, I]`` (slices,
rows, columns) or one slice ``[J, I]``.
"""

from __future__ import annotations

import numpy as np

CT_AIR_HU = -300.0
GREY_FLOOR = 0.06


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a bool mask (any dimensionality); empty stays empty."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(sizes.argmax())


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice of a ``[K, J, I]`` mask (or of one ``[J, I]`` slice)."""
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    if m.ndim == 2:
        return ndimage.binary_fill_holes(m)
    return np.stack([ndimage.binary_fill_holes(s) for s in m])


def foreground(array: np.ndarray) -> np.ndarray:
    """The raw head/brain voxels of ``array`` (before clean-up); see the module docstring for the rules."""
    a = np.asarray(array)
    if a.dtype == np.uint8:
        return a > GREY_FLOOR * 255.0
    a = a.astype(np.float32, copy=False)
    if float(a.min()) < -500.0:  # Hounsfield units
        return a > CT_AIR_HU
    return a != a.flat[0]


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """A raw foreground mask → the head/brain: largest connected component, holes filled per slice."""
    return fill_holes(largest_component(mask))


def head_mask(array: np.ndarray) -> np.ndarray:
    """Bool mask of the head (CT) or brain (skull-stripped MRI) of ``array`` ``[K, J, I]`` or ``[J, I]``."""
    return clean_mask(foreground(array))


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of values in [0, 1] (the bin centre maximising the between-class variance)."""
    h, edges = np.histogram(np.asarray(values, dtype=np.float64), bins, (0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    w, m = h.cumsum().astype(np.float64), (h * centres).cumsum()
    between = (m[-1] * w - m * w[-1]) ** 2 / np.maximum(w * (w[-1] - w), 1e-12)
    return float(centres[int(np.argmax(between))])


def grey01_mask(grey01: np.ndarray) -> np.ndarray:
    """Head mask of a windowed slice already scaled to [0, 1] ``[J, I]`` (the head-CT PNGs): grey above
    ``max(6 %, ½ Otsu)``, cleaned by :func:`clean_mask`."""
    g = np.asarray(grey01)
    return clean_mask(g > max(GREY_FLOOR, 0.5 * otsu_threshold(g)))
