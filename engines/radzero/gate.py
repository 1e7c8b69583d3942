"""The lung gate of RadZero's similarity map: the map is shown (and scored) only inside the lung fields.

Issue 18 found the ungated map bright outside the lungs (41 % of its peaks in the outer image border). The gate
is, in this order of preference:

1. :func:`engines.common.lung_fields.lung_field_mask` — a tiny U-Net trained on the filled lung fields (per-lung
   convex hulls of the training side's lungVAE masks, output hulled per lung, so dense consolidation is inside) —
   when its weights are shipped (``resources/weights/lung_fields/model.safetensors``);
2. else the **average training lung mask** ≥ 0.5 (:func:`engines.common.baseline.mean_mask` of the training split's
   lungVAE masks, at 224 px squashed to the image's shape), shipped as ``resources/weights/radzero/lung_prior.
   safetensors`` (tensor ``prior`` ``[S, S]`` float16 in [0, 1]).

Both give a bool mask on the image's own ``[H, W]`` pixel grid (row 0 = top, column 0 = left; no flip). torch +
numpy + safetensors only (the lung-field model is imported lazily).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PRIOR_FILE = Path(__file__).resolve().parents[2] / "resources" / "weights" / "radzero" / "lung_prior.safetensors"
PRIOR_THRESHOLD = 0.5
SOURCE_MODEL = "lung-field U-Net (engines/common/lung_fields)"
SOURCE_PRIOR = "average training lung mask >= 0.5"


def save_prior(prior: np.ndarray, path: Path = PRIOR_FILE) -> None:
    """Write the average training lung mask ``[S, S]`` (values in [0, 1]) as fp16 safetensors (atomic)."""
    from safetensors.torch import save_file

    from engines.common.evaluate import write_atomic

    tensors = {"prior": torch.from_numpy(np.asarray(prior, np.float32)).half().contiguous()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={
        "what": "average lungVAE lung mask of the radzero training split, squashed to S x S"}))


@functools.lru_cache(maxsize=2)
def load_prior(path: Path = PRIOR_FILE) -> np.ndarray:
    """The average training lung mask ``[S, S]`` float32 in [0, 1]."""
    from safetensors.torch import load_file

    return load_file(str(path))["prior"].float().numpy()


def resize01(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear (align_corners False: edges on edges) resize of a 2D float map to ``shape`` (float32)."""
    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def prior_mask(shape: tuple[int, int], prior: np.ndarray | None = None) -> np.ndarray:
    """The average training lung mask (``prior``, default the shipped one) resized to ``shape``, ≥ 0.5 (bool)."""
    p = load_prior() if prior is None else prior
    return resize01(p, shape) >= PRIOR_THRESHOLD


def lung_fields_model() -> Path | None:
    """The shipped lung-field weights, or None when they (or their module) are not there."""
    try:
        from engines.common.lung_fields import DEFAULT_WEIGHTS
    except ImportError:
        return None
    return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.exists() else None


def lung_gate(image: np.ndarray, prior: np.ndarray | None = None, use_model: bool = True) -> tuple[np.ndarray, str]:
    """Bool lung fields ``[H, W]`` of a 2D grey radiograph (any intensity range), and which gate made them.

    Args:
        image: ``[H, W]`` grey radiograph.
        prior: an average lung mask to use instead of the shipped one (evaluation passes the training mean).
        use_model: prefer the lung-field U-Net when shipped.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"lung_gate takes one 2D grey image, got shape {img.shape}")
    if use_model and lung_fields_model() is not None:
        from engines.common.lung_fields import lung_field_mask

        m = lung_field_mask(img)
        if m.any():
            return m, SOURCE_MODEL
    return prior_mask(img.shape, prior), SOURCE_PRIOR


def gate_map(sim: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """``sim`` ``[r, c]`` with everything outside the gate (``[H, W]`` bool, resampled to ``[r, c]`` by area
    fraction ≥ 0.5) set to 0. Values inside are unchanged (the map's absolute 0–1 scale is kept)."""
    g = np.asarray(gate, np.float32)
    if g.shape != sim.shape:
        g = F.adaptive_avg_pool2d(torch.from_numpy(g)[None, None], sim.shape)[0, 0].numpy() \
            if g.shape[0] >= sim.shape[0] and g.shape[1] >= sim.shape[1] else resize01(g, sim.shape)
    return np.where(g >= 0.5, sim, 0.0).astype(np.float32)


__all__ = ["PRIOR_FILE", "SOURCE_MODEL", "SOURCE_PRIOR", "gate_map", "load_prior", "lung_gate", "prior_mask",
           "save_prior"]
