"""VL-CABS (vision–language cross-attention based on similarity) and the multi-positive InfoNCE loss.

VL-CABS, for image tokens ``V_i`` (i = 0 … N, token 0 = CLS) and a text embedding ``t`` (both after the shared
LayerNorm), with temperature τ = exp(log τ), learnable, init 0.07::

    score_i = cos(t, V_i) / τ                 similarity of the text with every token
    a       = softmax_i(score)                attention over tokens (the same τ; no separate attn temperature)
    pooled  = Σ_i a_i V_i                     attention-weighted sum of the (un-normalised) tokens
    logit   = cos(t, pooled)                  the image–text logit, in [-1, 1]

The similarity map shown to the user is ``sigmoid(score_i)`` for the patch tokens (CLS dropped), reshaped to
the patch grid and upsampled bilinearly (the authors upsample the score, then apply the sigmoid).

MP-NCE (our reading of the paper's multi-positive InfoNCE; the exact equation could not be checked offline):
with ``L[b, j]`` = logit / τ of image b and sentence j of the batch and ``P[b, j]`` = 1 when sentence j is
one of image b's sentences (several per image; identical sentences of other images count as positives too),
every positive pair is contrasted against the *negatives* of its row (image → text) and of its column
(text → image)::

    ℓ_i2t(b, p) = −log( e^{L[b,p]} / (e^{L[b,p]} + Σ_{n: P[b,n]=0} e^{L[b,n]}) )
    ℓ_t2i(b, p) = −log( e^{L[b,p]} / (e^{L[b,p]} + Σ_{c: P[c,p]=0} e^{L[c,p]}) )
    loss = ½ (mean_b mean_{p∈P(b)} ℓ_i2t + mean_p mean_{b: P[b,p]=1} ℓ_t2i)

so one image's positives do not compete with each other. With one positive per row and column it is the
symmetric CLIP InfoNCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vl_cabs(v: torch.Tensor, t: torch.Tensor, tau: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """VL-CABS of the module docstring.

    Args:
        v: image tokens ``[B, N, D]`` (CLS included where used).
        t: text embeddings ``[T, D]``.
        tau: temperature τ (> 0), scalar or ``[1]``.

    Returns:
        ``(logit [B, T] in [-1, 1], score [B, T, N] = cos / τ)``.
    """
    vn = F.normalize(v, dim=-1)
    tn = F.normalize(t, dim=-1)
    score = torch.einsum("td,bnd->btn", tn, vn) / tau
    attn = score.softmax(dim=-1)
    pooled = attn @ v  # [B, T, D]
    logit = (F.normalize(pooled, dim=-1) * tn[None]).sum(-1)
    return logit, score


def positive_mask(owner_sets: list[set[str]], sentences: list[str]) -> torch.Tensor:
    """``P [B, T]`` bool: sentence j is one of image b's sentences (compared as text)."""
    return torch.tensor([[s in own for s in sentences] for own in owner_sets], dtype=torch.bool)


def mp_nce(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Multi-positive InfoNCE of the module docstring.

    Args:
        logits: ``[B, T]`` scaled logits (logit / τ).
        pos: ``[B, T]`` bool positives; every row and every column needs at least one positive.

    Returns:
        scalar loss.
    """
    if not bool(pos.any(1).all()) or not bool(pos.any(0).all()):
        raise ValueError("every image and every sentence needs a positive")
    neg_inf = torch.finfo(logits.dtype).min
    pos_f = pos.to(logits.dtype)

    def one_side(lg: torch.Tensor, p: torch.Tensor, pf: torch.Tensor) -> torch.Tensor:
        # log Σ_neg e^{L} per row, then per positive: log(e^{L_p} + Σ_neg) = logaddexp
        neg_lse = torch.logsumexp(lg.masked_fill(p, neg_inf), dim=1, keepdim=True)
        has_neg = (~p).any(1, keepdim=True)
        denom = torch.where(has_neg, torch.logaddexp(lg, neg_lse), lg)
        per = (denom - lg) * pf
        return (per.sum(1) / pf.sum(1)).mean()

    return 0.5 * (one_side(logits, pos, pos_f) + one_side(logits.t(), pos.t(), pos_f.t()))
