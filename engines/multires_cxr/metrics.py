"""Metrics of the paper, written out (numpy only) and tested on hand-computed cases.

* :func:`roc_auc`: area under the ROC curve = P(score of a random positive > score of a random negative)
  + ½ P(tie) (the Mann–Whitney U statistic divided by n_pos · n_neg), computed from average ranks.
* :func:`soft_dice`: continuous Dice between a saliency map and a binary region. With ``s`` the saliency
  min-max normalised to [0, 1] over the map (:func:`minmax`) and ``m`` ∈ {0, 1} the lung mask (or the union
  of the lung boxes) on the same grid::

      Dice(s, m) = 2 Σ_ij s_ij · m_ij / (Σ_ij s_ij + Σ_ij m_ij)

  It is 1 only when the map is exactly the region, 0 when the map is zero on the region; a constant map
  gives 2|m| / (N + |m|) (N pixels). Undefined (NaN) when both sums are 0.
"""

from __future__ import annotations

import numpy as np


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of binary ``labels`` ``[N]`` (0/1) for ``scores`` ``[N]``; NaN unless both classes occur."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _average_ranks(s)
    u = r[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def minmax(s: np.ndarray) -> np.ndarray:
    """Map ``s`` linearly to [0, 1] (min → 0, max → 1); a constant map becomes all zeros."""
    s = np.asarray(s, dtype=np.float64)
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)


def soft_dice(s: np.ndarray, m: np.ndarray) -> float:
    """Continuous Dice 2Σ(s·m)/(Σs+Σm) of a map ``s`` in [0, 1] and a binary mask ``m`` (same shape)."""
    s = np.asarray(s, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"shapes differ: {s.shape} vs {m.shape}")
    den = s.sum() + m.sum()
    return float("nan") if den == 0 else float(2.0 * (s * m).sum() / den)
