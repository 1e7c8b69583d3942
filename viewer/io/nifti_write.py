"""Write a :class:`Volume` to NIfTI-1 (.nii or .nii.gz) the way dcm2niix does.

* Affine: LPS → RAS (``diag(-1, -1, 1, 1) @ affine``), stored as sform and qform, both with code 1
  (scanner-based / "aligned"). A sheared (gantry-tilted) affine is exact in the sform; the qform holds the
  nearest rigid approximation.
* Rows are stored bottom-up by default (``flip_rows=True``), as dcm2niix does: the j axis is reversed and
  the affine adjusted, so a Lucent DICOM volume writes the same voxels and affine as dcm2niix's file.
* Data: ``[k, j, i]`` becomes NIfTI's ``[i, j, k]``; the dtype is kept (bool → uint8). Colour: uint8 RGB is
  written as NIfTI RGB24; other colour dtypes as a 4D ``[i, j, k, 3]`` array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.volume import LPS_FROM_RAS, Volume
from .atomic import atomic_path
from .errors import LoadError

RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def write_nifti(volume: Volume, out_path: str | Path, *, flip_rows: bool = True) -> Path:
    """Write ``volume`` to ``out_path`` (.nii or .nii.gz); returns the path. Raises LoadError on I/O errors."""
    import nibabel as nib  # imported on first use (start-up time)

    out_path = Path(out_path)
    if not out_path.name.endswith((".nii", ".nii.gz")):
        raise LoadError(f"{out_path}: NIfTI files must end in .nii or .nii.gz")
    data = volume.data3d  # [k, j, i] or [k, j, i, c]
    affine = volume.affine.copy()
    if flip_rows:
        nj = data.shape[1]
        affine[:3, 3] = affine[:3, 3] + affine[:3, 1] * (nj - 1)
        affine[:3, 1] = -affine[:3, 1]
        data = data[:, ::-1]
    if volume.rgb:
        rgb = data[..., :3]
        if rgb.dtype == np.uint8:
            packed = np.empty(rgb.shape[:3], dtype=RGB24)
            for n, name in enumerate("RGB"):
                packed[name] = rgb[..., n]
            arr = packed.transpose(2, 1, 0)
        else:
            arr = rgb.transpose(2, 1, 0, 3)
    else:
        arr = data.transpose(2, 1, 0)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
    ras = LPS_FROM_RAS @ affine  # the same matrix converts both ways
    img = nib.Nifti1Image(np.asarray(arr), ras)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(ras, code=1)
    img.set_qform(ras, code=1)
    descrip = str(volume.metadata.get("series_description", ""))[:79]
    if descrip:
        img.header["descrip"] = descrip.encode("ascii", "replace")
    suffix = ".nii.gz" if out_path.name.endswith(".nii.gz") else ".nii"
    try:  # atomic: a failure half-way (disk full) leaves any previous file as it was and no partial file
        with atomic_path(out_path, suffix=suffix) as tmp:
            nib.save(img, str(tmp))
    except OSError as exc:
        raise LoadError(f"{out_path}: cannot write ({exc.strerror or type(exc).__name__})") from None
    return out_path
