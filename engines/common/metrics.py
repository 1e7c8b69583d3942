"""Metrics every engine's evaluation uses (numpy only), tested on hand-computed cases.

* :func:`roc_auc`: area under the ROC curve = P(score of a random positive > score of a random negative)
  + ½ P(tie) (the Mann–Whitney U statistic divided by n_pos · n_neg), computed from average ranks.
* :func:`average_precision`: AUPRC as average precision ``Σ_k (R_k − R_{k−1}) P_k`` over the positives in
  descending score order (ties broken by the order of the sort, stable).
* :func:`dice`: binary Dice ``2|A∩B| / (|A| + |B|)``; 1.0 when both are empty (nothing to find, nothing found).
* :func:`minmax`: a map linearly to [0, 1].
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


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary arrays of the same shape; 1.0 if both are empty."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else float(2.0 * np.logical_and(a, b).sum() / s)


def minmax(s: np.ndarray) -> np.ndarray:
    """Map ``s`` linearly to [0, 1] (min → 0, max → 1); a constant map becomes all zeros. float64."""
    s = np.asarray(s, dtype=np.float64)
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)
