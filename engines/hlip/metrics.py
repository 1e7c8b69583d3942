"""HLIP's zero-shot metrics (numpy only), tested on hand-computed cases.

* :func:`roc_auc` — imported from :mod:`engines.common.metrics` (Mann–Whitney, ties ½).
* :func:`balanced_accuracy` — mean over the classes present in ``y_true`` of the per-class recall
  ``#(pred = c ∧ true = c) / #(true = c)`` (sklearn's definition; classes never true are skipped).
* :func:`zero_shot_probs` — softmax over classes of ``scale · cos(image, class prompt)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.common.metrics import roc_auc

__all__ = ["balanced_accuracy", "roc_auc", "zero_shot_probs"]


def balanced_accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean per-class recall over the classes occurring in ``y_true`` (NaN when ``y_true`` is empty)."""
    t = np.asarray(list(y_true))
    p = np.asarray(list(y_pred))
    if t.size == 0:
        return float("nan")
    return float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)]))


def zero_shot_probs(image: np.ndarray, prompts: np.ndarray, scale: float) -> np.ndarray:
    """``image [B, E]``, ``prompts [C, E]`` (both L2-normalised) → softmax probabilities ``[B, C]``."""
    z = scale * np.asarray(image, np.float64) @ np.asarray(prompts, np.float64).T
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
