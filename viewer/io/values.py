"""Checks on loaded voxel values."""

from __future__ import annotations

import numpy as np

from .errors import add_warning


def warn_non_finite(array: np.ndarray, metadata: dict) -> int:
    """Count NaN/Inf voxels of a float array; add a warning when there are any. Returns the count."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return 0
    if np.isfinite(array.min()) and np.isfinite(array.max()):  # NaN and ±Inf always reach min or max
        return 0
    slabs = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(1, -1)
    bad = sum(int(s.size - np.count_nonzero(np.isfinite(s))) for s in slabs)  # slab-wise: no big temp
    if bad:
        add_warning(metadata, f"{bad} voxels are NaN or infinite; they are ignored for display ranges")
    return bad
