"""Where an engine's coarse output grid sits on its input image or volume.

A network sees the input resized to a fixed size and returns maps on a coarser grid (saliency ``n × n``,
patch tokens ``D' × H' × W'``). Grid cell ``u`` along an axis of ``n_in`` input voxels and ``n_out`` cells covers
``s = n_in / n_out`` input voxels, and its centre lies at input index ``(u + ½)·s − ½`` (voxel centres at
integer indices on both grids, grid edges on image edges). :func:`grid_to_input_matrix` is that map as a 4×4
matrix on homogeneous indices ``(i, j, k, 1)``; the overlay affine is ``input_affine @ matrix``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def grid_to_input_matrix(grid_shape: Sequence[int], input_shape: Sequence[int]) -> np.ndarray:
    """4×4 matrix taking a grid index ``(i, j, k, 1)`` to the input index ``(i, j, k, 1)``.

    Args:
        grid_shape: the output grid in array order, ``(rows, cols)`` or ``(slices, rows, cols)``.
        input_shape: the input in the same order and of the same length. Axes not given (k for 2D) stay identity.
    """
    if len(grid_shape) != len(input_shape):
        raise ValueError(f"grid {tuple(grid_shape)} and input {tuple(input_shape)} differ in dimensions")
    m = np.eye(4)
    for ax, (n_out, n_in) in enumerate(zip(grid_shape[::-1], input_shape[::-1], strict=True)):  # i, j, k
        s = n_in / n_out
        m[ax, ax] = s
        m[ax, 3] = 0.5 * s - 0.5
    return m


def map_to_image_matrix(map_shape: tuple[int, int], image_shape: tuple[int, int]) -> np.ndarray:
    """2D: ``(rows, cols)`` of a map on an image of ``(rows, cols)`` (see :func:`grid_to_input_matrix`)."""
    return grid_to_input_matrix(map_shape, image_shape)


def token_to_voxel_matrix(grid: tuple[int, int, int], scan_shape: tuple[int, int, int]) -> np.ndarray:
    """3D: a token grid ``(D', H', W')`` on a scan ``(K, J, I)`` (see :func:`grid_to_input_matrix`)."""
    return grid_to_input_matrix(grid, scan_shape)
