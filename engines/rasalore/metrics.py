"""Evaluation metrics (numpy only), tested on hand-computed cases.

* :func:`dice`: binary Dice ``2|A∩B| / (|A| + |B|)``; 1.0 when both are empty (nothing to find, nothing found).
* :func:`roc_auc`: Mann–Whitney U / (n⁺ n⁻) with average ranks for ties (P(score⁺ > score⁻) + ½ P(tie)).
* :func:`average_precision`: AUPRC as average precision ``Σ_k (R_k − R_{k−1}) P_k`` over the positives in
  descending score order (ties broken by the order of the sort, stable).
"""

from __future__ import annotations

import numpy as np

from engines.multires_cxr.metrics import roc_auc  # noqa: F401  (re-exported: one AUC for every engine)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary arrays of the same shape; 1.0 if both are empty."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else float(2.0 * np.logical_and(a, b).sum() / s)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (AUPRC); NaN without positives."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    yy = y[order]
    tp = np.cumsum(yy)
    precision = tp / np.arange(1, len(yy) + 1)
    return float((precision * yy).sum() / yy.sum())
