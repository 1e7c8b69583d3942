"""Classification metrics of the paper (numpy only), tested on hand-computed cases.

* :func:`confusion` ``[C, C]`` (rows = true class, columns = predicted);
* :func:`balanced_accuracy` = mean over classes of recall (classes absent from ``y_true`` are skipped);
* :func:`f1_per_class`: ``2·TP / (2·TP + FP + FN)`` per class (0 when the class is never true nor predicted
  would be 0/0: returned as NaN);
* :func:`macro_auc`: one-vs-rest ROC AUC per class, averaged — the AUC itself is
  :func:`engines.common.metrics.roc_auc` (Mann–Whitney, ties ½), imported, not copied.
"""

from __future__ import annotations

import numpy as np

from engines.common.metrics import roc_auc


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[C, C]``: entry (i, j) = images of true class i predicted as j."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    m = confusion(y_true, y_pred, num_classes)
    support = m.sum(1)
    present = support > 0
    return float(np.mean(np.diag(m)[present] / support[present]))


def f1_per_class(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 ``[C]``; NaN for a class that is neither true nor predicted anywhere."""
    m = confusion(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(m)
    den = 2 * tp + (m.sum(0) - tp) + (m.sum(1) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)


def auc_per_class(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC ``[C]`` of ``probs [N, C]``."""
    y = np.asarray(y_true, int)
    return np.array([roc_auc(y == c, probs[:, c]) for c in range(probs.shape[1])])


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean of :func:`auc_per_class` over classes where it is defined."""
    a = auc_per_class(y_true, probs)
    return float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")
