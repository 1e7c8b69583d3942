"""Honest baselines every engine is compared with, fitted on the training split only.

* :class:`LogisticBaseline`: L2-regularised logistic regression (multi-class softmax or independent per-label
  sigmoids) on standardised features, fitted by L-BFGS in torch (evaluation needs torch + numpy only).
* Features: :func:`pixel_features` (an image downsampled to a small square), :func:`histogram_features`
  (intensity or per-channel colour histograms).
* :func:`mean_mask`: the average training mask (an "average anatomy" localisation baseline).
* Volume-adaptive intensity thresholds (segmentation baselines): :data:`THRESHOLD_RULES` gives each rule's
  parameter grid, :func:`threshold_cut` the cut of one rule on one image's intensities (so the cut follows that
  image's own statistics) and :func:`choose_threshold` the rule/parameter with the best mean score over the
  *training* cases it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


def pixel_features(images: np.ndarray, size: int) -> np.ndarray:
    """``[N, size*size*C]``: each image ``[N, H, W]`` or ``[N, H, W, C]`` area-averaged to ``size × size``."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d(x, size).flatten(1).numpy()


def histogram_features(images: np.ndarray, bins: int, value_range: tuple[float, float]) -> np.ndarray:
    """``[N, bins*C]``: normalised histograms of each image (per channel for ``[N, H, W, C]``)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    out = np.empty((x.shape[0], bins * x.shape[-1]), dtype=np.float32)
    for i, img in enumerate(x):
        hs = [np.histogram(img[..., c], bins=bins, range=value_range)[0] for c in range(x.shape[-1])]
        h = np.concatenate(hs).astype(np.float32)
        out[i] = h / max(float(h.sum()), 1.0) * x.shape[-1]
    return out


def mean_mask(masks: np.ndarray) -> np.ndarray:
    """The pixel-wise mean of training masks ``[N, H, W]`` (0/1), float32 in [0, 1]."""
    return np.asarray(masks, dtype=np.float32).mean(axis=0)


@dataclass
class LogisticBaseline:
    """Logistic regression on standardised features.

    Attributes:
        l2: weight of the L2 penalty (per sample, on the weights, not the bias).
        class_weight_balanced: weight each class (multi-class) or each label's positives (multi-label) by
            inverse frequency, so a rare class is not ignored.
    """

    l2: float = 1e-2
    class_weight_balanced: bool = True
    multiclass: bool = field(default=True, init=False)
    _mu: np.ndarray | None = field(default=None, init=False, repr=False)
    _sd: np.ndarray | None = field(default=None, init=False, repr=False)
    _w: torch.Tensor | None = field(default=None, init=False, repr=False)
    _b: torch.Tensor | None = field(default=None, init=False, repr=False)

    def fit(self, features: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> LogisticBaseline:
        """Fit on ``features`` ``[N, D]`` and ``labels``: ``[N]`` class indices (multi-class) or ``[N, L]`` 0/1."""
        x = np.asarray(features, dtype=np.float64)
        self._mu, self._sd = x.mean(0), x.std(0) + 1e-6
        xt = torch.as_tensor((x - self._mu) / self._sd)
        y = np.asarray(labels)
        self.multiclass = y.ndim == 1
        if self.multiclass:
            k = int(n_classes or y.max() + 1)
            yt = torch.as_tensor(y.astype(np.int64))
            counts = np.bincount(y.astype(np.int64), minlength=k).astype(np.float64)
            cw = (len(y) / (k * np.maximum(counts, 1))) if self.class_weight_balanced else np.ones(k)
            weight = torch.as_tensor(cw)
        else:
            k = y.shape[1]
            yt = torch.as_tensor(y.astype(np.float64))
            pos = y.sum(0).astype(np.float64)
            pw = ((len(y) - pos) / np.maximum(pos, 1)) if self.class_weight_balanced else np.ones(k)
            weight = torch.as_tensor(pw)
        w = torch.zeros(xt.shape[1], k, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

        def loss_fn() -> torch.Tensor:
            opt.zero_grad()
            z = xt @ w + b
            if self.multiclass:
                loss = F.cross_entropy(z, yt, weight=weight)
            else:
                loss = F.binary_cross_entropy_with_logits(z, yt, pos_weight=weight)
            loss = loss + self.l2 * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(loss_fn)
        self._w, self._b = w.detach(), b.detach()
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, K]`` (softmax) or label probabilities ``[N, L]`` (sigmoid)."""
        if self._w is None:
            raise RuntimeError("fit the baseline first")
        x = torch.as_tensor((np.asarray(features, dtype=np.float64) - self._mu) / self._sd)
        z = x @ self._w + self._b
        return (torch.softmax(z, 1) if self.multiclass else torch.sigmoid(z)).numpy()


#: Intensity-threshold rules and their parameter grids (one value: the rule has no parameter).
#: ``percentile``: the ``p``-th percentile of the region's intensities (a fixed share of the region is kept);
#: ``mean_std``: mean + k·std; ``median_mad``: median + k·1.4826·MAD (robust: a large bright lesion moves the
#: median and MAD less than the mean and std); ``otsu2``: two-level Otsu, the Otsu cut of the intensities above
#: the region's Otsu cut (the brightest class; no parameter).
THRESHOLD_RULES: dict[str, tuple[float, ...]] = {
    "percentile": tuple(float(p) for p in range(80, 100)),
    "mean_std": tuple(k / 4 for k in range(0, 17)),
    "median_mad": tuple(k / 4 for k in range(0, 17)),
    "otsu2": (0.0,),
}

#: How each rule reads in a table (``{param}`` is filled in).
THRESHOLD_RULE_TEXT = {
    "percentile": "p{param:g} percentile",
    "mean_std": "mean + {param:g}·std",
    "median_mad": "median + {param:g}·MAD",
    "otsu2": "two-level Otsu",
}


def otsu_cut(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the histogram cut maximising the between-class variance."""
    v = np.asarray(values, dtype=np.float64).ravel()
    h, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(h).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(h * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def threshold_cuts(values: np.ndarray, rules: Mapping[str, Sequence[float]] | None = None
                   ) -> dict[tuple[str, float], float]:
    """``{(rule, param): cut}`` for every rule and parameter of ``rules`` (default :data:`THRESHOLD_RULES`) on
    one image's intensities ``values`` (e.g. its brain voxels); a voxel is "lesion" when above the cut."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no intensities to threshold")
    rules = THRESHOLD_RULES if rules is None else rules
    mean, std = float(v.mean()), float(v.std())
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    out: dict[tuple[str, float], float] = {}
    for rule, params in rules.items():
        if rule == "percentile":
            cuts = np.percentile(v, list(params))
            out.update({(rule, float(p)): float(c) for p, c in zip(params, cuts, strict=True)})
        elif rule == "mean_std":
            out.update({(rule, float(k)): mean + k * std for k in params})
        elif rule == "median_mad":
            out.update({(rule, float(k)): med + k * mad for k in params})
        elif rule == "otsu2":
            first = otsu_cut(v)
            upper = v[v > first]
            out.update({(rule, float(k)): otsu_cut(upper) if upper.size > 1 else first for k in params})
        else:
            raise ValueError(f"unknown threshold rule {rule!r}")
    return out


def threshold_cut(values: np.ndarray, rule: str, param: float) -> float:
    """The cut of one ``rule`` with parameter ``param`` on ``values`` (see :func:`threshold_cuts`)."""
    return threshold_cuts(values, {rule: (float(param),)})[(rule, float(param))]


def choose_threshold(scores: Sequence[Mapping[tuple[str, float], float]]) -> dict[str, dict]:
    """Per rule, the parameter with the best mean score over the cases, and the best rule overall.

    Args:
        scores: one ``{(rule, param): score}`` per TRAINING case (higher is better, e.g. Dice per volume).

    Returns:
        ``{"rules": {rule: {"param", "score", "per_case"}}, "best": rule}``; ties go to the first rule and
        parameter in the order of the first case's keys.
    """
    if not scores:
        raise ValueError("no training cases to choose a threshold on")
    keys = list(scores[0])
    mean = {k: float(np.mean([s[k] for s in scores])) for k in keys}
    best: dict[str, tuple[str, float]] = {}
    for key in keys:
        if key[0] not in best or mean[key] > mean[best[key[0]]]:
            best[key[0]] = key
    top = max(best, key=lambda r: mean[best[r]])  # first maximum wins
    rules = {rule: {"param": key[1], "score": round(mean[key], 4),
                    "per_case": [round(float(s[key]), 4) for s in scores]} for rule, key in best.items()}
    return {"rules": rules, "best": top}
