"""Evaluate multires_cxr weights on the HELD-OUT split only (``test.npz`` written by :mod:`prepare`).

Usage::

    python -m engines.multires_cxr.evaluate --weights resources/weights/multires_cxr/model.safetensors \\
        --data data_prepared/multires_cxr --out eval.json

Reports (the paper's metrics, as far as this data allows):

* per-class ROC AUC for every finding where both positives and negatives occur among the known held-out
  labels (unknown = -1 are left out), and their mean;
* localisation: continuous Dice (:func:`metrics.soft_dice`) between the class saliency map — upsampled
  bilinearly to the input grid and min-max normalised to [0, 1] — and the **lung** mask (lungVAE masks) or
  the union of the two lung boxes, for every (image, finding) pair with a positive label and a mask/box.
  Also for the top-scoring finding on every held-out image with a mask/box, and the constant-map baseline
  2|m|/(N+|m|). The lung region is a proxy: the data has no lesion boxes, so this measures whether saliency
  falls on the lungs, not on the lesion (the paper used NIH's lesion boxes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common.cxr_labels import LABELS
from engines.common.evaluate import evaluate_parser, publish
from engines.common.train import find_npz
from engines.multires_cxr.data import MEAN, STD
from engines.multires_cxr.metrics import minmax, roc_auc, soft_dice
from engines.multires_cxr.weights_io import load_model, sha256

#: Yao et al. 2018, per-class test AUC on NIH ChestX-ray14 — UNVERIFIED: written from memory of the paper's
#: Table 1; no copy of the paper was reachable offline to check them. Check against arXiv 1803.07703 before
#: quoting. They are printed only as "paper (unverified)".
PAPER_AUC: dict[str, float] = {
    "Atelectasis": 0.772, "Cardiomegaly": 0.904, "Effusion": 0.859, "Infiltration": 0.695, "Mass": 0.792,
    "Nodule": 0.717, "Pneumonia": 0.713, "Pneumothorax": 0.841, "Consolidation": 0.788, "Edema": 0.882,
    "Emphysema": 0.829, "Fibrosis": 0.767, "Pleural_Thickening": 0.765, "Hernia": 0.914,
}


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, S, S]`` → (probabilities ``[N, 14]``, saliency logits ``[N, 14, S, S]`` upsampled)."""
    probs, maps = [], []
    for i in range(0, len(images), batch):
        x = (torch.from_numpy(images[i:i + batch]).float()[:, None] / 255.0 - MEAN) / STD
        logits, s = model(x)
        probs.append(torch.sigmoid(logits).numpy())
        maps.append(F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False).numpy())
    return np.concatenate(probs), np.concatenate(maps)


def evaluate(weights: Path, data: Path, threads: int = 2) -> dict[str, object]:
    """Compute every number of the module docstring; returns a JSON-ready dict."""
    torch.set_num_threads(threads)
    model = load_model(weights)
    cfg = model.config
    npz = find_npz(data, cfg.input_size, "test", "multires_cxr")
    d = np.load(npz)
    probs, maps = predict(model, d["images"])
    y = d["labels"]
    per_class: dict[str, dict[str, object]] = {}
    aucs = []
    for c, name in enumerate(LABELS):
        known = y[:, c] >= 0
        pos, neg = int((y[known, c] == 1).sum()), int((y[known, c] == 0).sum())
        auc = roc_auc(y[known, c], probs[known, c]) if pos and neg else float("nan")
        per_class[name] = {"auc": None if np.isnan(auc) else round(auc, 4), "n_pos": pos, "n_neg": neg,
                           "paper_auc_unverified": PAPER_AUC[name]}
        if not np.isnan(auc):
            aucs.append(auc)
    loc: dict[str, object] = {}
    for region, has_key, mask_key in (("lung_mask", "has_mask", "lung_mask"), ("lung_boxes", "has_box", "box_mask")):
        pos_d: list[float] = []
        pos_by: dict[str, list[float]] = {}
        top_d: list[float] = []
        base_d: list[float] = []
        for i in np.nonzero(d[has_key])[0]:
            m = d[mask_key][i]
            base_d.append(soft_dice(np.ones_like(m, dtype=np.float64), m))
            top_d.append(soft_dice(minmax(maps[i, int(np.argmax(probs[i]))]), m))
            for c in np.nonzero(y[i] == 1)[0]:
                v = soft_dice(minmax(maps[i, c]), m)
                pos_d.append(v)
                pos_by.setdefault(LABELS[c], []).append(v)
        loc[region] = {
            "images": len(top_d),
            "dice_positive_labels": _mean(pos_d), "pairs": len(pos_d),
            "dice_per_class": {k: _mean(v) for k, v in pos_by.items()},
            "dice_top_class": _mean(top_d), "dice_constant_map_baseline": _mean(base_d),
        }
    r = model.pool.r.detach().numpy()
    return {
        "engine": "multires_cxr", "weights": str(weights), "weights_sha256": sha256(weights),
        "config": cfg.to_dict(), "split": "held-out (test.npz)", "test_images": int(len(y)),
        "test_patients": int(len(set(d["patientids"].tolist()))),
        "per_class": per_class, "mean_auc": round(float(np.mean(aucs)), 4) if aucs else None,
        "auc_classes": len(aucs), "paper_mean_auc_unverified": round(float(np.mean(list(PAPER_AUC.values()))), 4),
        "localisation": loc, "lse_lba_r": {n: round(float(v), 3) for n, v in zip(LABELS, r, strict=True)},
    }


def _mean(v: list[float]) -> float | None:
    v = [x for x in v if not np.isnan(x)]
    return round(float(np.mean(v)), 4) if v else None


def format_table(res: dict[str, object]) -> str:
    """A plain-text table of :func:`evaluate`'s result."""
    lines = [f"held-out split: {res['test_images']} images, {res['test_patients']} patients",
             f"{'finding':20s} {'n+':>4s} {'n-':>4s} {'AUC':>7s} {'paper*':>7s}"]
    for name, v in res["per_class"].items():  # type: ignore[union-attr]
        auc = "  n/a" if v["auc"] is None else f"{v['auc']:.3f}"
        lines.append(f"{name:20s} {v['n_pos']:4d} {v['n_neg']:4d} {auc:>7s} {v['paper_auc_unverified']:7.3f}")
    lines.append(f"{'mean AUC':20s} {'':4s} {'':4s} {str(res['mean_auc']):>7s} {res['paper_mean_auc_unverified']:7.3f}"
                 f"   (ours over {res['auc_classes']} classes with both labels; paper over 14)")
    for region, v in res["localisation"].items():  # type: ignore[union-attr]
        lines.append(f"soft Dice vs {region} ({v['images']} images): positive-label maps {v['dice_positive_labels']}"
                     f" ({v['pairs']} pairs), top-class map {v['dice_top_class']},"
                     f" constant-map baseline {v['dice_constant_map_baseline']}")
    lines.append("* paper figures unverified (recalled, not checked against the PDF offline); paper: NIH ChestX-ray14, "
                 "~112k images, test AUC; ours: this tiny COVID-heavy set, rule-mapped labels")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = evaluate_parser("multires_cxr", "Evaluate multires_cxr on the held-out split.", threads=2).parse_args(argv)
    res = evaluate(args.weights, args.data, args.threads)
    publish(res, "engines.multires_cxr.evaluate", argv, format_table(res), args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
