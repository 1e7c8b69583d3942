"""One whole-volume pass of RASALoRE stage 2 on the input grid (numpy + torch only), shared by the engine and
:mod:`engines.rasalore.evaluate`, so the numbers on the card come from the code the app runs.

:func:`segment` takes a raw 3D volume ``[Z, H, W]`` (axial slices along axis 0) and returns :class:`Segmentation`:

* ``prob``: mask probability on the input grid (each analysed slice's 128² output resized into its brain box;
  0 elsewhere), probability units;
* ``act``: point activation (the 32×32 candidate-point sigmoid) resized the same way, 0 outside the brain;
* ``slice_logit`` ``[Z]``: the slice's "tumour" logit = logit of its largest point activation (NaN for slices
  that were not analysed);
* ``brain``: the brain mask; ``vol01``: the normalised volume the network saw (before cropping).

Post-processing (:mod:`engines.rasalore.postprocess`) and calibration (:mod:`engines.rasalore.calibrate`) are
applied on top by their callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Slices per forward pass (larger batches were no faster per slice on the 2-core CPU: cache-bound).
BATCH = 4


@dataclass
class Segmentation:
    """The raw outputs of one volume (see the module docstring); arrays ``[Z, H, W]`` unless noted."""

    prob: np.ndarray
    act: np.ndarray
    slice_logit: np.ndarray
    brain: np.ndarray
    boxes: np.ndarray
    vol01: np.ndarray


def prepare_volume(vol: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(brain, boxes, crops, vol01)`` of a raw volume: brain mask, per-slice brain boxes, ``[N, size, size]``
    crops and the normalised volume (``[0, 1]``, gamma 2) they were cut from.

    Raises:
        ValueError: no brain (or no contrast) in the volume, or no slice holds enough brain.
    """
    from engines.rasalore.preprocess import brain_mask, crop_slices, normalise_volume, slice_boxes

    brain = brain_mask(vol)
    vol01 = normalise_volume(vol, brain)
    boxes = slice_boxes(brain)
    if not (boxes[:, 0] >= 0).any():
        raise ValueError("no slice holds enough brain to analyse")
    return brain, boxes, crop_slices(vol01, boxes, size), vol01


def forward_crops(model, crops: np.ndarray, step: Callable[[float, str], None] | None = None,  # noqa: ANN001
                  device: str | object = "cpu", batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Mask probabilities ``[N, s, s]`` and point activations ``[N, g, g]`` of ``crops`` ``[N, S, S]``.

    ``step(fraction, message)`` is called before every batch (it may raise to cancel).
    """
    import torch

    cfg, n = model.config, len(crops)
    out_side = 4 * cfg.token_grid
    probs = np.zeros((n, out_side, out_side), np.float32)
    acts = np.zeros((n, cfg.grid, cfg.grid), np.float32)
    with torch.inference_mode():
        for a in range(0, n, batch):
            if step is not None:
                step(a / max(n, 1), f"slice {a + 1} of {n}")
            x = torch.from_numpy(np.ascontiguousarray(crops[a:a + batch], dtype=np.float32))[:, None]
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            lg, act, _ = model(x)
            probs[a:a + batch] = torch.sigmoid(lg[:, 0]).float().cpu().numpy()
            acts[a:a + batch] = act.float().cpu().numpy()
    if step is not None:
        step(1.0, f"{n} slices")
    return probs, acts


def assemble(probs: np.ndarray, acts: np.ndarray, brain: np.ndarray, boxes: np.ndarray, vol01: np.ndarray
             ) -> Segmentation:
    """Paste the per-slice outputs back onto the input grid (see the module docstring)."""
    from engines.rasalore.preprocess import paste_back

    shape = brain.shape
    prob = paste_back(probs, boxes, shape)
    act = paste_back(acts, boxes, shape)
    act *= brain
    prob *= brain
    top = acts.reshape(len(acts), -1).max(1).astype(np.float64) if len(acts) else np.zeros(0)
    top = np.clip(top, 1e-6, 1 - 1e-6)
    slice_logit = np.full(shape[0], np.nan)
    slice_logit[np.nonzero(boxes[:, 0] >= 0)[0]] = np.log(top / (1 - top))
    return Segmentation(prob=prob, act=act, slice_logit=slice_logit, brain=brain, boxes=boxes, vol01=vol01)


def segment(model, vol: np.ndarray, batch: int = BATCH) -> Segmentation:  # noqa: ANN001
    """:func:`prepare_volume` → :func:`forward_crops` → :func:`assemble` on the CPU in one call."""
    brain, boxes, crops, vol01 = prepare_volume(vol, model.config.input_size)
    probs, acts = forward_crops(model, crops, batch=batch)
    return assemble(probs, acts, brain, boxes, vol01)
