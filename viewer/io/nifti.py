"""NIfTI-1/2 (.nii, .nii.gz) → :class:`Volume` with nibabel.

* The stored dtype is kept (``img.dataobj``): scl_slope/scl_inter are applied only when they change values —
  an integral intercept with slope 1 is added in integers when the result fits the stored type (as DICOM),
  any other scaling gives float32.
* Array: nibabel's ``[i, j, k]`` data transposed to ``[k, j, i]`` (a view: no copy).
* Affine: ``diag(-1, -1, 1, 1) @ img.affine`` (nibabel's choice of sform/qform, RAS → LPS mm).
* 4D (or more): the first volume is loaded, with a warning.
* The header's claimed size is checked against available memory before any voxel is read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..model.volume import LPS_FROM_RAS, Volume
from .errors import LoadError, add_warning, fail
from .memory import DEFAULT_RAM_FRACTION, check_fits_in_ram
from .values import warn_non_finite

RGB_DTYPES = ("RGB", "RGBA")


def read_nifti(path: Path, ram_fraction: float = DEFAULT_RAM_FRACTION) -> Volume:
    """Load ``path`` (opened read-only, not memory-mapped); raises LoadError with a one-line message."""
    import nibabel as nib  # imported on first use: it is not needed to show a DICOM study

    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return _read_unnamed(path, ram_fraction)
    try:
        img = nib.load(str(path), mmap=False)
    except PermissionError:
        raise fail(path, "permission denied") from None
    except FileNotFoundError:
        raise fail(path, "file not found") from None
    except Exception as exc:  # nibabel raises many types for bad headers
        raise fail(path, f"not a readable NIfTI file ({type(exc).__name__})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise fail(path, "not a NIfTI file")
    return _volume_from_image(path, img, ram_fraction)


def _read_unnamed(path: Path, ram_fraction: float) -> Volume:
    """A NIfTI-1 file whose name does not end in .nii/.nii.gz (nibabel guesses by name): read by content."""
    import nibabel as nib

    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            holder = nib.FileHolder(fileobj=f)
            img = nib.Nifti1Image.from_file_map({"header": holder, "image": holder})
            return _volume_from_image(path, img, ram_fraction)
    except LoadError:
        raise
    except PermissionError:
        raise fail(path, "permission denied") from None
    except Exception as exc:
        raise fail(path, f"not a readable NIfTI file ({type(exc).__name__})") from None


def _volume_from_image(path: Path, img, ram_fraction: float) -> Volume:
    shape = tuple(int(s) for s in img.shape)
    dtype = img.get_data_dtype()
    if len(shape) == 0 or any(s <= 0 for s in shape):
        raise fail(path, f"NIfTI header has an empty image shape {shape}")
    spatial = shape[:3]
    nbytes = int(np.prod(spatial, dtype=np.float64)) * dtype.itemsize
    too_big = check_fits_in_ram(
        nbytes, f"NIfTI header for {'×'.join(map(str, spatial))} {dtype.name} voxels", ram_fraction
    )
    if too_big:
        raise fail(path, too_big)

    md: dict[str, Any] = {"source": str(path), "warnings": []}
    try:
        proxy = img.dataobj
        slope, inter = _slope_inter(proxy)
        if len(shape) > 3:
            add_warning(md, f"{len(shape)}D NIfTI with {int(np.prod(shape[3:]))} volumes: showing the first")
            slicer = (slice(None),) * 3 + (0,) * (len(shape) - 3)
            try:
                raw = np.asarray(proxy._get_unscaled(slicer))  # nibabel ≥ 3: reads only that volume
            except AttributeError:  # pragma: no cover - older nibabel
                raw = np.asarray(proxy[slicer])
                raw = raw.astype(np.float32) if raw.dtype == np.float64 else raw
                slope, inter = 1.0, 0.0
        else:
            raw = np.asarray(proxy.get_unscaled())
    except MemoryError:
        raise fail(path, f"not enough memory for {nbytes / 1e9:.1f} GB of voxels") from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise fail(path, f"truncated or corrupt NIfTI data ({type(exc).__name__})") from None

    while raw.ndim < 3:
        raw = raw[..., np.newaxis]
    rgb = raw.dtype.names is not None
    if rgb:
        raw = np.stack([raw[n] for n in raw.dtype.names[:3]], axis=-1)
        data = raw.transpose(2, 1, 0, 3)
    else:
        data = _apply_scaling(raw, slope, inter).transpose(2, 1, 0)
    if data.shape[0] == 1 and rgb:
        data = data[0]
    affine = LPS_FROM_RAS @ img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        add_warning(md, "NIfTI affine is missing or singular: 1 mm identity geometry used")
        zooms = [abs(float(z)) for z in img.header.get_zooms()[:3]]
        zooms += [1.0] * (3 - len(zooms))
        affine = LPS_FROM_RAS @ np.diag([*(z if np.isfinite(z) and z > 0 else 1.0 for z in zooms), 1.0])
    warn_non_finite(data, md)
    modality = _sidecar(path, md) or ("XC" if rgb else "OT")
    return Volume(array=data, affine=affine, modality=modality, metadata=md, spacing_known=True, rgb=rgb)


def _slope_inter(proxy) -> tuple[float, float]:
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    if not np.isfinite(slope) or slope == 0:
        slope = 1.0
    if not np.isfinite(inter):
        inter = 0.0
    return slope, inter


def _apply_scaling(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """Apply scl_slope/scl_inter by the module's dtype rule."""
    if slope == 1.0 and inter == 0.0:
        return raw
    if slope == 1.0 and float(inter).is_integer() and raw.dtype.kind in "iu":
        lo, hi = int(raw.min()) + int(inter), int(raw.max()) + int(inter)
        for cand in (raw.dtype, np.dtype(np.int16), np.dtype(np.int32)):
            if cand.kind == "i" and cand.itemsize >= raw.dtype.itemsize:
                info = np.iinfo(cand)
                if info.min <= lo and hi <= info.max:
                    out = raw if cand == raw.dtype else raw.astype(cand)
                    out += cand.type(int(inter))
                    return out
    out = raw.astype(np.float32)
    if slope != 1.0:
        out *= np.float32(slope)
    if inter:
        out += np.float32(inter)
    return out


def _sidecar(path: Path, md: dict) -> str | None:
    """Modality and series description from a BIDS/dcm2niix JSON sidecar next to the file, if any."""
    name = path.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else path.stem
    side = path.with_name(stem + ".json")
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(info, dict):
        return None
    if isinstance(info.get("SeriesDescription"), str):
        md["series_description"] = info["SeriesDescription"]
    if isinstance(info.get("BodyPartExamined"), str):
        md["body_part"] = info["BodyPartExamined"]
    mod = info.get("Modality")
    return mod if isinstance(mod, str) and mod else None
