"""Raster images (PNG, JPEG, TIFF, BMP, GIF) → 2D :class:`Volume` with Pillow.

* Grey: ``[j, i]`` uint8 (``L``, ``1``), uint16 (``I;16``), int32 (``I``) or float32 (``F``); alpha dropped.
* Colour (RGB, RGBA, palette, CMYK, YCbCr): ``[j, i, 3]`` uint8 with ``rgb=True`` (alpha dropped).
* No physical pixel size: ``spacing_known=False`` and an identity 1 mm affine (i → +x, j → +y), i.e. the
  image is shown as stored. EXIF orientation is applied first, as photo viewers do.
* Modality "XC" (photograph) for colour images, "OT" for grey ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..model.volume import Volume
from .errors import add_warning, fail, read_failure
from .values import warn_non_finite

_GREY = {
    "L": np.uint8,
    "I;16": np.uint16,
    "I;16L": np.uint16,
    "I;16B": np.uint16,
    "I": np.int32,
    "F": np.float32,
}


def read_raster(path: Path) -> Volume:
    """Load one image file (first frame of multi-page files, with a warning)."""
    md: dict = {"source": str(path), "warnings": []}
    try:
        with Image.open(path) as im:
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            if n_frames > 1:
                add_warning(md, f"image has {n_frames} frames: showing the first")
            im.load()
            if im.getexif().get(0x0112, 1) not in (1, None):
                im = ImageOps.exif_transpose(im)
                add_warning(md, "rotated/flipped as the photo's EXIF orientation says")
            arr, rgb = _to_array(im)
    except (PermissionError, FileNotFoundError) as exc:
        raise read_failure(path, exc) from None
    except UnidentifiedImageError:
        raise fail(path, "not a DICOM, NIfTI or image file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise fail(path, f"corrupt or truncated image ({type(exc).__name__})") from None
    warn_non_finite(arr, md)
    return Volume(
        array=arr, affine=np.eye(4), modality="XC" if rgb else "OT", metadata=md, spacing_known=False, rgb=rgb
    )


def _to_array(im: Image.Image) -> tuple[np.ndarray, bool]:
    mode = im.mode
    if mode == "LA":
        im, mode = im.convert("L"), "L"
    elif mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255), False
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in _GREY:
        return np.ascontiguousarray(np.asarray(im), dtype=_GREY[mode]), False
    if mode != "RGB":
        im = im.convert("RGB") if mode not in ("RGBA",) else im
    arr = np.asarray(im)
    return np.ascontiguousarray(arr[..., :3]), True
