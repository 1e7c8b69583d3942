"""Test-time augmentation (TTA) of the student: logits averaged over the 8 dihedral views of the input.

Dermoscopy has no canonical orientation, and the student is trained on random flips × 90° rotations
(``train.batch01``), so its prediction for a photo is taken as the mean of its logits over the 8 views
``rot90(x, k)`` and ``rot90(flip(x), k)``, k = 0…3. The 8 views of a rotated or flipped photo are the same 8
images in another order (the dihedral group D4), so the averaged logits do not depend on how the photo was turned.

Used by both the engine (what the app runs) and :mod:`engines.dermae.evaluate` (what the card reports); the
temperature in ``calibration.json`` is fitted on these averaged logits. The Grad-CAM map stays computed on the
original view only (for the TTA arg-max class).
"""

from __future__ import annotations

import torch

#: number of views averaged (4 rotations × horizontal flip)
N_VIEWS = 8
TTA_TEXT = "logits averaged over the 8 dihedral views (4 × 90° rotations × horizontal flip)"


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 dihedral views of ``x [B, C, H, W]`` (square): rot90 by k = 0…3 of ``x`` and of its horizontal flip."""
    flipped = x.flip(-1)
    return [torch.rot90(v, k, dims=(-2, -1)) for v in (x, flipped) for k in range(4)]


@torch.no_grad()
def tta_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean of ``model``'s logits over the 8 dihedral views of ``x [B, C, S, S]`` → ``[B, classes]`` (float32).

    The views are run as one batch of ``8·B`` (eval mode: no batch statistics, so batching does not change them).
    """
    b = x.shape[0]
    views = torch.cat(dihedral_views(x), 0)
    return model(views).float().reshape(N_VIEWS, b, -1).mean(0)
