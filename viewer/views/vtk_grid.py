"""Volumes as VTK image data placed in patient space.

* The VTK **world frame is patient LPS in mm** (x → patient Left, y → Posterior, z → Superior), the same
  frame as :attr:`viewer.model.volume.Volume.affine` and :attr:`viewer.model.document.Document.crosshair`.
* Each volume becomes a ``vtkImageData`` on its own voxel grid with origin 0, spacing = the affine's column
  norms (mm per voxel along i, j, k) and identity direction; its prop gets a user matrix holding the affine's
  unit direction cosines and translation, so that point ``(i·si, j·sj, k·sk)`` lands at
  ``affine @ (i, j, k, 1)``. Oblique and mirrored affines are therefore drawn where they belong.
* Arrays indexed ``[k, j, i]`` and C-contiguous are handed to VTK without a copy (VTK's x index, i, runs
  fastest). Volumes above ``max_dim`` voxels along an axis are strided (nearest sample, dtype kept) for
  rendering only; float64 is never created (float64 input is cast to float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from viewer.model.volume import Volume


@dataclass
class GridImage:
    """A volume as ``vtkImageData`` plus the user matrix that places it in patient LPS mm.

    Attributes:
        image: origin 0, spacing (mm along i, j, k after any striding), identity direction.
        matrix: 4×4 image-data coordinates (mm) → patient LPS (mm): unit direction cosines + translation.
        array: the numpy array whose buffer ``image`` shares; kept alive here.
        stride: voxel stride applied per axis (i, j, k) for rendering.
    """

    image: vtkImageData
    matrix: vtkMatrix4x4
    array: np.ndarray
    stride: tuple[int, int, int]


def user_matrix(affine: np.ndarray) -> np.ndarray:
    """The 4×4 rigid-with-reflection part of ``affine``: columns normalised, translation kept."""
    m = np.array(affine, dtype=np.float64)
    m[:3, :3] = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    return m


def to_vtk_matrix(m: np.ndarray) -> vtkMatrix4x4:
    """numpy 4×4 → ``vtkMatrix4x4``."""
    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def grid_image(volume: Volume, max_dim: int = 256, dtype: np.dtype | None = None) -> GridImage:
    """``volume`` (grey, 3D) as image data on its own grid; strided above ``max_dim`` voxels per axis.

    ``dtype`` optionally casts (labels to an integer type); otherwise the dtype is kept, except float64 →
    float32 and bool → uint8. No copy is made when the array is already C-contiguous and unstrided.
    """
    a = volume.data3d
    if volume.rgb:
        raise ValueError("colour volumes are not volume rendered")
    nk, nj, ni = a.shape
    stride = tuple(max(1, -(-n // max_dim)) for n in (ni, nj, nk))
    if stride != (1, 1, 1):
        a = a[:: stride[2], :: stride[1], :: stride[0]]
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    elif a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.bool_:
        a = a.view(np.uint8)
    a = np.ascontiguousarray(a)
    img = vtkImageData()
    img.SetDimensions(a.shape[2], a.shape[1], a.shape[0])
    sp = volume.spacing
    img.SetSpacing(sp[0] * stride[0], sp[1] * stride[1], sp[2] * stride[2])
    img.SetOrigin(0.0, 0.0, 0.0)
    scalars = numpy_support.numpy_to_vtk(a.reshape(-1), deep=False)
    scalars.SetName("values")
    img.GetPointData().SetScalars(scalars)
    return GridImage(img, to_vtk_matrix(user_matrix(volume.affine)), a, stride)  # type: ignore[arg-type]


def patient_bounds(volume: Volume) -> tuple[float, float, float, float, float, float]:
    """(xmin, xmax, ymin, ymax, zmin, zmax) in LPS mm of the voxel centres' bounding box."""
    nk, nj, ni = volume.shape3d
    corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float)
    p = volume.index_to_patient(corners)
    lo, hi = p.min(0), p.max(0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])
