"""Volume: an image array plus the geometry that places it in the patient.

Frame convention (used everywhere in Lucent)
--------------------------------------------
* Arrays are indexed ``[k, j, i]`` = ``[slice, row, column]`` for 3D, ``[j, i]`` for 2D grey and
  ``[j, i, c]`` for 2D colour (``c`` = 3 RGB channels). 3D colour is ``[k, j, i, c]``.
* ``affine`` is a 4×4 float64 matrix mapping the homogeneous voxel index **(i, j, k, 1)** — column,
  row, slice; note the reversed order relative to the array axes — to **patient LPS coordinates in mm**
  (x grows to the patient's Left, y to Posterior, z to Superior), as DICOM does. NIfTI's RAS world is
  converted on reading (x and y negated). Voxel centres sit at integer indices.
* The array keeps the dtype it was stored with (int16 CT stays int16); readers apply DICOM rescale
  slope/intercept only when it changes the values, and then to float32, never float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(eq=False)
class Volume:
    """An image with its voxel → patient (LPS, mm) geometry.

    Attributes:
        array: pixel data, ``[k, j, i]``, ``[j, i]``, ``[j, i, c]`` or ``[k, j, i, c]``.
        affine: 4×4, voxel index (i, j, k, 1) → patient LPS mm.
        modality: DICOM-style modality code ("CT", "MR", "CR", "DX", "US", "XC" for photos, "OT").
        metadata: free-form facts from the file (series description, window centre/width, warnings…).
        spacing_known: False when the source gave no physical pixel size (PNG X-rays, photos); the
            affine then uses 1 mm per pixel and views must not print millimetres as if they were real.
        rgb: True when the last array axis holds colour channels (RGB or RGBA).
    """

    array: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    modality: str = "OT"
    metadata: dict[str, Any] = field(default_factory=dict)
    spacing_known: bool = True
    rgb: bool = False

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4×4, got {self.affine.shape}")
        if self.array.ndim not in (2, 3, 4):
            raise ValueError(f"array must be 2D, 3D or 4D, got {self.array.ndim}D")
        if self.array.ndim == 4:
            self.rgb = True
        if self.rgb and self.array.shape[-1] not in (3, 4):
            raise ValueError(f"colour arrays need 3 or 4 channels last, got shape {self.array.shape}")
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise ValueError("affine is singular or not finite")

    # ---- shape -------------------------------------------------------------------------------------
    @property
    def data3d(self) -> np.ndarray:
        """The array as ``[k, j, i]`` (grey) or ``[k, j, i, c]`` (colour): a view, never a copy."""
        a = self.array
        if a.ndim == 2 or (a.ndim == 3 and self.rgb):
            return a[np.newaxis]
        return a

    @property
    def shape3d(self) -> tuple[int, int, int]:
        """Spatial shape ``(nk, nj, ni)``; 2D images have ``nk == 1``."""
        s = self.data3d.shape
        return int(s[0]), int(s[1]), int(s[2])

    @property
    def is_2d(self) -> bool:
        return self.shape3d[0] == 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (i, j, k) — column, row, slice — from the affine's column norms."""
        n = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(n[0]), float(n[1]), float(n[2])

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    # ---- geometry ---------------------------------------------------------------------------------
    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` as (i, j, k) → patient LPS mm ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Patient LPS mm ``(..., 3)`` → continuous voxel indices (i, j, k) ``(..., 3)``."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def center_patient(self) -> np.ndarray:
        """Patient LPS coordinate (mm) of the volume's central voxel."""
        nk, nj, ni = self.shape3d
        return self.index_to_patient(np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2]))

    def contains_index(self, ijk: np.ndarray) -> bool:
        """True when the rounded (i, j, k) index lies inside the array."""
        nk, nj, ni = self.shape3d
        r = np.rint(np.asarray(ijk)).astype(int)
        return bool(0 <= r[0] < ni and 0 <= r[1] < nj and 0 <= r[2] < nk)

    def value_at_index(self, ijk: np.ndarray) -> Any:
        """Voxel value at the rounded (i, j, k) index, or None outside the array."""
        if not self.contains_index(ijk):
            return None
        i, j, k = np.rint(np.asarray(ijk)).astype(int)
        v = self.data3d[k, j, i]
        return v.tolist() if np.ndim(v) else v.item()

    def value_range(self) -> tuple[float, float]:
        """Finite (min, max) of the data, cached in metadata (NaN/Inf ignored)."""
        cached = self.metadata.get("_value_range")
        if cached is None:
            a = self.array
            if a.dtype.kind == "f":
                finite = a[np.isfinite(a)]
                cached = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            else:
                cached = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
            self.metadata["_value_range"] = cached
        return cached
