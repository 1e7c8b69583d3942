"""LSE-LBA pooling (Yao et al. 2018, eq. 2): Log-Sum-Exp with a learnable lower-bounded sharpness.

For one class with saliency map ``S`` of ``w × h`` instances::

    r = r0 + exp(β)                                  (β learnable, init 0; r0 ≥ 0 a fixed prior)
    p = 1/r · log( 1/(w·h) · Σ_ij exp(r · S_ij) )
      = 1/r · ( logsumexp(r · S) − log(w·h) )        (computed this way: stable for large r·S)

``p`` lies between mean(S) (r → 0) and max(S) (r → ∞); r0 bounds the sharpness from below.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def lse_lba(s: torch.Tensor, r: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Pool saliency maps with per-class sharpness.

    Args:
        s: ``[B, C, H, W]`` class saliency maps (logits, or probabilities when pooling probabilities).
        r: ``[C]`` positive sharpness per class.
        region: optional ``[B, 1, H, W]`` 0/1 mask of the instances to pool over (e.g. the lung fields); the
            mean inside the log is then over the ``Σ region`` instances. An empty region pools the whole map.
    Returns:
        ``[B, C]`` pooled values.
    """
    b, c, h, w = s.shape
    rs = s.reshape(b, c, h * w) * r.view(1, c, 1)
    if region is None:
        return (torch.logsumexp(rs, dim=-1) - math.log(h * w)) / r.view(1, c)
    keep = region.reshape(b, 1, h * w) > 0.5
    keep = keep | ~keep.any(dim=-1, keepdim=True)  # nothing to pool over: the whole map
    n = keep.sum(dim=-1).to(s.dtype)  # [B, 1]
    rs = rs.masked_fill(~keep, float("-inf"))
    return (torch.logsumexp(rs, dim=-1) - torch.log(n)) / r.view(1, c)


class LSELBAPool(nn.Module):
    """LSE-LBA pooling with one learnable β per class (init 0) and a fixed lower bound ``r0``.

    Input ``[B, C, H, W]`` → output ``[B, C]``.
    """

    def __init__(self, num_classes: int, r0: float = 5.0) -> None:
        super().__init__()
        if r0 < 0:
            raise ValueError("r0 must be ≥ 0")
        self.r0 = float(r0)
        self.beta = nn.Parameter(torch.zeros(num_classes))

    @property
    def r(self) -> torch.Tensor:
        """``[C]`` current sharpness r0 + exp(β)."""
        return self.r0 + torch.exp(self.beta)

    def forward(self, s: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        return lse_lba(s, self.r, region)

    def extra_repr(self) -> str:
        return f"num_classes={self.beta.numel()}, r0={self.r0}"
