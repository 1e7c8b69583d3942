"""Calibration of engine scores: temperature scaling fitted on validation, saturation and expected calibration error.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar ``T > 0`` fitted to minimise the negative
log-likelihood on the *validation* split; ranks (and so AUC) do not change, only how sure the scores look.
The engine stores ``T`` beside its weights (:data:`CALIBRATION_FILE`, keyed by the weights' SHA-256) and applies it
at inference only to that very file (:func:`read_fitted`). torch + numpy only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: What an engine's evaluate command writes beside the weights it fitted (temperatures, operating points).
CALIBRATION_FILE = "calibration.json"


def fit_temperature(logits: np.ndarray, labels: np.ndarray, multiclass: bool, max_iter: int = 200) -> float:
    """The temperature ``T`` minimising the NLL of ``logits / T`` on validation.

    Args:
        logits: ``[N, C]`` raw scores (multi-class: softmax logits; multi-label/binary: sigmoid logits, any shape
            matching ``labels``).
        labels: multi-class: ``[N]`` class indices; otherwise 0/1 of the same shape as ``logits``
            (NaN entries are ignored: unlabelled).
        multiclass: softmax cross-entropy when True, binary cross-entropy otherwise.

    Returns:
        ``T`` in [0.05, 100]; 1.0 when there is nothing to fit.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    if multiclass:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        keep = torch.ones_like(y, dtype=torch.bool)
    else:
        yf = np.asarray(labels, dtype=np.float64)
        keep = torch.as_tensor(np.isfinite(yf))
        y = torch.as_tensor(np.nan_to_num(yf))
    if z.numel() == 0 or not bool(keep.any()):
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        scaled = z / log_t.exp()
        if multiclass:
            loss = torch.nn.functional.cross_entropy(scaled, y)
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scaled[keep], y[keep])
        loss.backward()
        return loss

    opt.step(nll)
    return float(np.clip(np.exp(log_t.item()), 0.05, 100.0))


def saturation(probs: np.ndarray, low: float = 0.02, high: float = 0.98) -> dict[str, float]:
    """Shares of scores below ``low`` and above ``high`` (a model pinned at 0 or 1 has both large)."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    if p.size == 0:
        return {"below_0.02": float("nan"), "above_0.98": float("nan")}
    return {"below_0.02": float((p < low).mean()), "above_0.98": float((p > high).mean())}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width confidence bins.

    Multi-class (``probs`` ``[N, C]``, ``labels`` ``[N]`` indices): the top-label confidence against whether the
    top class is right. Binary / multi-label (``probs`` and 0/1 ``labels`` of one shape, NaN = unlabelled): every
    entry's probability against its label. Returns ``Σ_b (n_b / N) |accuracy_b − confidence_b|``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim == 2 and y.ndim == 1 and p.shape[0] == y.shape[0] and p.shape[1] > 1:
        conf = p.max(axis=1)
        correct = (p.argmax(axis=1) == y).astype(np.float64)
    else:
        yf = y.astype(np.float64).ravel()
        keep = np.isfinite(yf)
        conf, correct = p.ravel()[keep], yf[keep]
    if conf.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def calibration_report(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Saturation shares and ECE in one dict (``card.json["calibration"]``)."""
    return {**saturation(probs), "ece": expected_calibration_error(probs, labels)}


def read_fitted(weights: Path, sha256: str | None = None, name: str = CALIBRATION_FILE) -> dict[str, Any] | None:
    """The JSON file ``name`` beside ``weights`` when it was fitted for that very file, else None.

    "Fitted for that file" means its ``weights_sha256`` equals the file's SHA-256 (``sha256`` when the caller
    already has it, else computed); a file fitted for other weights, none at all, or a damaged one gives None (the
    engines then run uncalibrated and say so in their notes).
    """
    path = Path(weights).with_name(name)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if sha256 is None:
        from engines.weights import sha256_file

        sha256 = sha256_file(weights)
    return data if data.get("weights_sha256") == sha256 else None
