"""Window/level: the grey-value range a radiologist looks through, and the standard presets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowLevel:
    """A display window: ``width`` and ``center`` in the image's value units (HU for CT)."""

    width: float
    center: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.width) and np.isfinite(self.center)):
            raise ValueError("window width and centre must be finite")
        if self.width <= 0:
            object.__setattr__(self, "width", 1e-6)

    @property
    def levels(self) -> tuple[float, float]:
        """(low, high) grey values mapped to black and white."""
        return self.center - self.width / 2, self.center + self.width / 2

    def __str__(self) -> str:
        """"W 350  L 50" as the views show it: whole numbers from 100 up (never "3e+04"), else 4 digits."""
        return f"W {_number(self.width)}  L {_number(self.center)}"

    @classmethod
    def from_levels(cls, low: float, high: float) -> WindowLevel:
        return cls(width=max(high - low, 1e-6), center=(low + high) / 2)


def _number(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.4g}"


#: Presets as (width, centre); CT presets in HU.
PRESETS: dict[str, WindowLevel] = {
    "brain": WindowLevel(80, 40),
    "subdural": WindowLevel(200, 75),
    "stroke": WindowLevel(40, 40),
    "lung": WindowLevel(1500, -600),
    "mediastinum": WindowLevel(350, 50),
    "bone": WindowLevel(2000, 500),
}


def auto_window(data: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> WindowLevel:
    """A window spanning the ``low_pct``..``high_pct`` percentiles of the finite data (subsampled).

    When more than a fifth of the voxels sit at the minimum (background), they are left out.
    """
    step = max(1, data.size // 200_000)
    sample = np.asarray(data.reshape(-1)[::step] if data.flags.c_contiguous else data.flat[::step])
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return WindowLevel(1.0, 0.5)
    # a large uniform background (zero outside a skull-stripped brain, air padding) is not tissue
    floor = sample.min()
    at_floor = sample == floor
    if 0.2 < at_floor.mean() < 1.0:
        sample = sample[~at_floor]
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
        if hi <= lo:
            hi = lo + 1.0
    return WindowLevel.from_levels(float(lo), float(hi))


def default_window(volume_metadata: dict, data: np.ndarray) -> WindowLevel:
    """The file's own window (DICOM WindowCenter/Width) when present, else :func:`auto_window`."""
    wc, ww = volume_metadata.get("window_center"), volume_metadata.get("window_width")
    if wc is not None and ww is not None and float(ww) > 0:
        return WindowLevel(float(ww), float(wc))
    return auto_window(data)


def window_for(name: str, volume_metadata: dict, data: np.ndarray) -> WindowLevel:
    """Window for a preset ``name``: one of :data:`PRESETS`, "auto" (from the data) or "file" (DICOM)."""
    if name == "auto":
        return auto_window(data)
    if name == "file":
        return default_window(volume_metadata, data)
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown window preset {name!r}") from None
