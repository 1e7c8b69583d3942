"""Honest baselines every engine is compared with, fitted on the training split only.

* :class:`LogisticBaseline`: L2-regularised logistic regression (multi-class softmax or independent per-label
  sigmoids) on standardised features, fitted by L-BFGS in torch (evaluation needs torch + numpy only).
* Features: :func:`pixel_features` (an image downsampled to a small square), :func:`histogram_features`
  (intensity or per-channel colour histograms).
* :func:`mean_mask`: the average training mask (an "average anatomy" localisation baseline).
"""

from __future__ import annotations

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
