"""Stage-2 losses (the authors' ``loss.py``, restated; pseudo-masks come from DDPT only — no MedSAM term).

For a prediction ``p`` in [0, 1] and a target ``t`` in {0, 1} (flattened per slice):

* :func:`dice_coefficient`: ``(2 Σ p·t + ε) / (Σ p + Σ t + ε)``, ε = 1e-7.
* :func:`tversky_index`: ``TP / (TP + δ·FN + (1 − δ)·FP + 1e-6)`` with ``TP = Σ p·t``, ``FN = Σ (1 − p)·t``,
  ``FP = Σ p·(1 − t)``; the authors use δ = 0.3 for the mask (false positives weigh 0.7).
* :func:`exp_log`: the authors' "exponential logarithmic" form ``clamp((−log x)^0.3, 0, 2)``.
* :func:`point_activation_loss`: EL-Dice between the point activations ``[B, g, g]`` and the pseudo-mask
  sampled at the candidate points (tumour slices).
* :func:`point_embedding_loss`: the authors' ``ActivePointEmbeddingLoss_MSE``: point embeddings of active
  points → +1, inactive → −1 (MSE).
* :func:`segmentation_loss`: EL-Tversky(mask, pseudo-mask) + 0.6 · mean false-positive mass
  ``Σ p·(1 − t) / N`` on tumour slices.
* :func:`healthy_fp_penalty`: on healthy slices (slice label 0) the mean predicted mask and the mean point
  activation — the false-positive penalty on healthy slices.
"""

from __future__ import annotations

import torch
from torch import Tensor

FP_WEIGHT = 0.6
DELTA = 0.3


def dice_coefficient(p: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Soft Dice of one slice (any shape)."""
    p, t = p.reshape(-1), t.reshape(-1)
    return (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)


def tversky_index(p: Tensor, t: Tensor, delta: float = DELTA) -> Tensor:
    """Tversky index of one slice (any shape)."""
    p, t = p.reshape(-1), t.reshape(-1)
    tp = (p * t).sum()
    fn = ((1 - p) * t).sum()
    fp = (p * (1 - t)).sum()
    return tp / (tp + delta * fn + (1 - delta) * fp + 1e-6)


def exp_log(x: Tensor) -> Tensor:
    """``clamp((−log x)^0.3, 0, 2)`` (x clamped to ≥ 1e-12)."""
    return torch.clamp(torch.pow(-torch.log(x.clamp(min=1e-12, max=1.0)), 0.3), 0, 2)


def point_activation_loss(act: Tensor, target: Tensor) -> Tensor:
    """Mean EL-Dice over the batch: ``act, target [B, g, g]``."""
    return torch.stack([exp_log(dice_coefficient(a, t)) for a, t in zip(act, target, strict=True)]).mean()


def point_embedding_loss(emb: Tensor, target: Tensor) -> Tensor:
    """``emb [B, P, E]``, ``target [B, g, g]`` → mean over slices of MSE(active, +1) + MSE(inactive, −1)."""
    t = target.reshape(target.shape[0], -1).bool()
    losses = []
    for e, m in zip(emb, t, strict=True):
        loss = e.new_zeros(())
        if m.any():
            loss = loss + ((e[m] - 1) ** 2).mean()
        if (~m).any():
            loss = loss + ((e[~m] + 1) ** 2).mean()
        losses.append(loss)
    return torch.stack(losses).mean()


def segmentation_loss(pred: Tensor, target: Tensor, delta: float = DELTA) -> Tensor:
    """``pred, target [B, H, W]`` (pred in [0, 1]) → mean EL-Tversky + 0.6 · FP mass."""
    out = []
    for p, t in zip(pred, target, strict=True):
        out.append(exp_log(tversky_index(p, t, delta)) + FP_WEIGHT * (p * (1 - t)).sum() / t.numel())
    return torch.stack(out).mean()


def healthy_fp_penalty(pred: Tensor, act: Tensor) -> Tensor:
    """Healthy slices: mean mask probability + mean point activation. ``pred [B, H, W]``, ``act [B, g, g]``."""
    return pred.mean() + act.mean()
