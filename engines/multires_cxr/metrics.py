"""Metrics of the paper, written out (numpy only) and tested on hand-computed cases.

* :func:`roc_auc`, :func:`minmax`: from :mod:`engines.common.metrics`.
* :func:`soft_dice`: continuous Dice between a saliency map and a binary region. With ``s`` the saliency
  min-max normalised to [0, 1] over the map (:func:`minmax`) and ``m`` ∈ {0, 1} the lung mask (or the union
  of the lung boxes) on the same grid::

      Dice(s, m) = 2 Σ_ij s_ij · m_ij / (Σ_ij s_ij + Σ_ij m_ij)

  It is 1 only when the map is exactly the region, 0 when the map is zero on the region; a constant map
  gives 2|m| / (N + |m|) (N pixels). Undefined (NaN) when both sums are 0.
"""

from __future__ import annotations

import numpy as np

from engines.common.metrics import minmax, roc_auc

__all__ = ["minmax", "roc_auc", "soft_dice"]


def soft_dice(s: np.ndarray, m: np.ndarray) -> float:
    """Continuous Dice 2Σ(s·m)/(Σs+Σm) of a map ``s`` in [0, 1] and a binary mask ``m`` (same shape)."""
    s = np.asarray(s, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"shapes differ: {s.shape} vs {m.shape}")
    den = s.sum() + m.sum()
    return float("nan") if den == 0 else float(2.0 * (s * m).sum() / den)
