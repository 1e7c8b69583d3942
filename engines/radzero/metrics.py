"""Zero-shot metrics of RadZero, written out (numpy only) and tested on hand-computed cases.

* :func:`pointing_hit`: the pointing game — the map's maximum (first arg-max in row-major order) lies inside the
  region (box or mask).
* :func:`dice`: Dice of the map thresholded at θ (``map ≥ θ``) with a binary region: 2|A∩B| / (|A|+|B|); 1.0 when
  both are empty.
* :func:`choose_threshold`: the θ of a grid that maximises mean Dice — used on **training** images only.
* :func:`zero_shot_prob`: P(positive) = softmax over the positive and negated prompt logits.
* :func:`f1_accuracy`: F1 and accuracy at a probability threshold.
* ROC AUC is :func:`engines.common.metrics.roc_auc` (reused, tested there).
"""

from __future__ import annotations

import numpy as np

from engines.common.metrics import roc_auc

THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))


def pointing_hit(sim: np.ndarray, region: np.ndarray) -> bool:
    """Whether the arg-max of ``sim`` ``[H, W]`` falls inside the binary ``region`` ``[H, W]``."""
    if sim.shape != region.shape:
        raise ValueError(f"shapes differ: {sim.shape} vs {region.shape}")
    j, i = np.unravel_index(int(np.argmax(sim)), sim.shape)
    return bool(region[j, i])


def dice(sim: np.ndarray, region: np.ndarray, threshold: float) -> float:
    """Dice of ``sim ≥ threshold`` with ``region`` (both ``[H, W]``); 1.0 when both are empty."""
    a = np.asarray(sim) >= threshold
    b = np.asarray(region).astype(bool)
    den = int(a.sum()) + int(b.sum())
    return 1.0 if den == 0 else float(2 * int((a & b).sum()) / den)


def choose_threshold(sims: list[np.ndarray], regions: list[np.ndarray],
                     grid: tuple[float, ...] = THRESHOLD_GRID) -> tuple[float, dict[float, float]]:
    """The grid θ with the highest mean Dice over pairs (first on ties), and the mean Dice of every θ."""
    if not sims:
        raise ValueError("no (map, region) pairs to choose a threshold on")
    means = {t: float(np.mean([dice(s, r, t) for s, r in zip(sims, regions, strict=True)])) for t in grid}
    best = max(grid, key=lambda t: (means[t], -t))
    return float(best), means


def zero_shot_prob(logit_pos: np.ndarray, logit_neg: np.ndarray) -> np.ndarray:
    """softmax([pos, neg])[0] = 1 / (1 + e^{neg − pos}), elementwise."""
    return 1.0 / (1.0 + np.exp(np.asarray(logit_neg, np.float64) - np.asarray(logit_pos, np.float64)))


def f1_accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(F1 of the positive class, accuracy) of ``probs ≥ threshold`` against 0/1 ``labels``."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(probs) >= threshold
    tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
    f1 = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
    return float(f1), float((p == y).mean())


__all__ = ["THRESHOLD_GRID", "choose_threshold", "dice", "f1_accuracy", "pointing_hit", "roc_auc", "zero_shot_prob"]
