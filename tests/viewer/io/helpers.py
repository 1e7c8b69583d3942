"""Test helpers: align two volumes whose grids differ only by axis flips/permutations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from viewer.model.volume import Volume


def aligned_array(src: Volume, like: Volume) -> np.ndarray:
    """``src.array`` re-indexed onto ``like``'s grid; the two affines must differ by a signed permutation.

    Raises AssertionError when the grids are not the same set of voxel centres.
    """
    m = np.linalg.inv(src.affine) @ like.affine  # like index (i, j, k) → src index
    perm = np.rint(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-4), f"grids are not axis-aligned:\n{m}"
    assert np.allclose(m[:3, 3], np.rint(m[:3, 3]), atol=1e-3), f"grids are offset by a fraction:\n{m}"
    nk, nj, ni = like.shape3d
    ii, jj, kk = np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij")
    idx = np.stack([ii, jj, kk, np.ones_like(ii)], axis=-1).reshape(-1, 4) @ np.rint(m).T
    si, sj, sk = (idx[:, n].astype(int) for n in range(3))
    out = src.data3d[sk, sj, si].reshape(ni, nj, nk)
    return out.transpose(2, 1, 0)


def snapshot(path: Path) -> tuple[bytes, int]:
    """File bytes and mtime (ns), to check a reader left its input untouched."""
    return path.read_bytes(), os.stat(path).st_mtime_ns
