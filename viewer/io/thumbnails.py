"""Series thumbnails: the middle image of a series as a small PNG, cached on disk (Qt-free: numpy + Pillow).

The cache key is a hash of the middle file's path, size and mtime and the thumbnail size, so a changed file
gets a new thumbnail and an unchanged one is never decoded twice. Files are written atomically (temporary
file + ``os.replace``): a reader never sees half a PNG, even with two processes generating at once.

Grey images are windowed with the file's own window (DICOM WindowCenter/Width) when it has one, else the
0.5–99.5 percentile range; colour images are shown as stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .errors import LoadError, fail
from .sniff import sniff

DEFAULT_SIZE = 96


def cache_dir() -> Path:
    """The default thumbnail folder: ``<Lucent data folder>/thumbnails``."""
    from .index.store import data_dir

    return data_dir() / "thumbnails"


def middle_path(paths: Sequence[str | Path]) -> Path:
    """The file in the middle of ``paths`` (which the index returns in InstanceNumber order)."""
    if not paths:
        raise LoadError("a series without files has no thumbnail")
    return Path(paths[len(paths) // 2])


def thumbnail_file(paths: Sequence[str | Path], folder: str | Path | None = None,
                   size: int = DEFAULT_SIZE) -> Path:
    """Where the thumbnail of this series is (or will be) cached."""
    mid = middle_path(paths)
    try:
        st = mid.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    key = hashlib.sha1(f"{mid}|{stamp}|{size}".encode()).hexdigest()
    return Path(folder or cache_dir()) / key[:2] / f"{key}.png"


def thumbnail(paths: Sequence[str | Path], folder: str | Path | None = None, size: int = DEFAULT_SIZE) -> Path:
    """The cached thumbnail PNG of the series made of ``paths``, generated when missing.

    Returns the PNG's path (at most ``size`` pixels on its long side). Raises LoadError when the middle file
    cannot be decoded.
    """
    out = thumbnail_file(paths, folder, size)
    if out.exists():
        return out
    image = render(middle_path(paths), size)
    with atomic_path(out, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return out


def render(path: Path, size: int = DEFAULT_SIZE) -> Image.Image:
    """The middle slice/frame of ``path`` as an 8-bit Pillow image no larger than ``size``×``size``."""
    try:
        kind = sniff(path)
    except OSError as exc:
        raise fail(path, f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    if kind == "image":
        try:
            with Image.open(path) as im:
                im.draft("RGB" if im.mode not in ("L", "1") else "L", (size, size))  # JPEG: decode at low res
                im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        except (OSError, ValueError, SyntaxError) as exc:
            raise fail(path, f"corrupt or truncated image ({type(exc).__name__})") from None
        im.thumbnail((size, size))
        return im
    from . import load_volume

    vol = load_volume(path)
    arr = vol.array
    if vol.rgb:
        plane = arr[arr.shape[0] // 2] if arr.ndim == 4 else arr
        im = Image.fromarray(_to_uint8_rgb(plane[..., :3]), "RGB")
    else:
        plane = arr[arr.shape[0] // 2] if arr.ndim == 3 else arr
        im = Image.fromarray(window_uint8(plane, vol.metadata), "L")
    im.thumbnail((size, size))
    return im


def window_uint8(plane: np.ndarray, metadata: dict | None = None) -> np.ndarray:
    """A grey plane mapped to uint8 with the file's window, else its 0.5–99.5 percentile range."""
    md = metadata or {}
    values = plane.astype(np.float32, copy=False)
    wc, ww = md.get("window_center"), md.get("window_width")
    if wc is not None and ww:
        lo, hi = float(wc) - float(ww) / 2, float(wc) + float(ww) / 2
    else:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return np.zeros(plane.shape, np.uint8)
        sample = finite[:: max(1, finite.size // 65536)]
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    out = (np.nan_to_num(values, nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def _to_uint8_rgb(plane: np.ndarray) -> np.ndarray:
    if plane.dtype == np.uint8:
        return np.ascontiguousarray(plane)
    return window_uint8(plane)
