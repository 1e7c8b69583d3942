"""Evaluate multires_cxr weights against an honest baseline on the VALIDATION split (``test.npz`` of :mod:`prepare`).

Usage::

    python -m engines.multires_cxr.evaluate --weights resources/weights/multires_cxr/model.safetensors \\
        --data data_prepared/multires_cxr

Everything is measured on the held-out side of the patient-wise split (engines/multires_cxr/split.json); the
baseline is fitted on the training side only:

* **Classification**: per-class ROC AUC over the known labels of each finding the weights predict, and their
  macro mean, for the engine and for a logistic regression on 64×64 pixels
  (:class:`engines.common.baseline.LogisticBaseline`, one per class, fitted on the training images with a
  known label); paired bootstrap 95 % intervals over validation images; the verdict (on macro AUC) goes into
  ``eval.json["validation"]``.
* **Calibration**: one temperature per class fitted on the validation logits
  (:func:`engines.common.calibration.fit_temperature`); saturation shares (< 0.02, > 0.98) and ECE before and
  after, plus the ECE of a 2-fold cross-fit (temperature fitted on one half of the validation images, scored on
  the other), which is not flattered by fitting and scoring on the same cases. The temperatures and each class's
  operating point (Youden's J on the calibrated validation probabilities) are written to ``calibration.json``
  beside the weights; the engine reads them.
* **Localisation** on validation images with a lungVAE lung mask (and, separately, the COCO lung boxes): the map
  of the most probable finding, ``sigmoid(S / T)`` on the 64×64 grid, (a) as shown in the app, i.e. gated by the
  predicted lung fields, and (b) raw, ungated. Pointing game (the map's maximum inside the region) and mass
  inside the region (Σ map·region / Σ map), against the average training lung mask as a map.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engines.common import laterality
from engines.common.baseline import LogisticBaseline, pixel_features
from engines.common.calibration import CALIBRATION_FILE, calibration_report, fit_temperature
from engines.common.cxr_findings import CANDIDATES, counts
from engines.common.evaluate import evaluate_parser, publish, write_text_atomic
from engines.common.image import resize_mask
from engines.common.metrics import roc_auc
from engines.common.train import find_npz
from engines.common.validation import Comparison, compare, comparison_table, mean_of
from engines.multires_cxr.data import MEAN, STD, sigmoid, uses_lung_fields
from engines.multires_cxr.weights_io import load_model, sha256

BASELINE = "logistic regression on 64x64 pixels (train split)"


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, fields: np.ndarray | None,
            batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, S, S]`` (+ lung-field instances ``[N, S/4, S/4]`` or None) → (logits ``[N, C]``, saliency
    logits ``S`` ``[N, C, S/4, S/4]``)."""
    logits, maps = [], []
    for i in range(0, len(images), batch):
        x = (torch.from_numpy(images[i:i + batch]).float()[:, None] / 255.0 - MEAN) / STD
        region = None if fields is None else torch.from_numpy(fields[i:i + batch].astype(np.float32))[:, None]
        z, s = model(x, region)
        logits.append(z.numpy())
        maps.append(s.numpy())
    return np.concatenate(logits).astype(np.float64), np.concatenate(maps)


def youden_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The probability threshold maximising sensitivity + specificity − 1 (0.5 when one class is absent)."""
    y = labels.astype(bool)
    if y.all() or (~y).all():
        return 0.5
    best, thr = -1.0, 0.5
    for t in np.unique(probs):
        j = (probs[y] >= t).mean() + (probs[~y] < t).mean() - 1
        if j > best:
            best, thr = j, float(t)
    return thr


def _auc_metric(y: np.ndarray, scores: np.ndarray) -> Callable[[np.ndarray], float]:
    """``metric(idx)``: AUC of the known (≥ 0) labels among the resampled cases."""
    def metric(idx: np.ndarray) -> float:
        yy, ss = y[idx], scores[idx]
        k = yy >= 0
        return roc_auc(yy[k], ss[k])
    return metric


def _macro(metrics: list[Callable[[np.ndarray], float]]) -> Callable[[np.ndarray], float]:
    def metric(idx: np.ndarray) -> float:
        v = np.array([m(idx) for m in metrics])
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return metric


def _columns(d: np.lib.npyio.NpzFile, labels: tuple[str, ...]) -> np.ndarray:
    names = [str(n) for n in d["label_names"]]
    return d["labels"][:, [names.index(n) for n in labels]]


def _crossfit_ece(logits: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """ECE of 2-fold cross-fitted per-class temperatures (fit on one half of the images, score the other)."""
    from engines.common.calibration import expected_calibration_error

    rng = np.random.default_rng(seed)
    half = rng.permutation(len(y)) < len(y) // 2
    probs = np.empty_like(logits)
    for fit_side in (half, ~half):
        for c in range(y.shape[1]):
            t = fit_temperature(logits[fit_side, c], np.where(y[fit_side, c] >= 0, y[fit_side, c], np.nan),
                                multiclass=False)
            probs[~fit_side, c] = sigmoid(logits[~fit_side, c] / t)
    return expected_calibration_error(probs, np.where(y >= 0, y, np.nan))


def _localisation(maps: np.ndarray, top: np.ndarray, temps: np.ndarray, fields: np.ndarray, regions: np.ndarray,
                  prior: np.ndarray, region_name: str) -> tuple[dict[str, object], list[Comparison]]:
    """Pointing game and mass inside ``regions`` for the top finding's map (gated and raw) vs the mean mask."""
    rows: dict[str, list[float]] = {"gated_point": [], "gated_mass": [], "raw_point": [], "raw_mass": [],
                                    "prior_point": [], "prior_mass": []}

    def score(m: np.ndarray, r: np.ndarray, key: str) -> None:
        rows[f"{key}_point"].append(float(r.flat[int(np.argmax(m))]) if m.max() > 0 else 0.0)
        rows[f"{key}_mass"].append(float((m * r).sum() / m.sum()) if m.sum() > 0 else 0.0)

    for i in range(len(regions)):
        c = int(top[i])
        raw = sigmoid(maps[i, c] / temps[c])
        r = regions[i].astype(np.float64)
        score(raw * fields[i], r, "gated")
        score(raw, r, "raw")
        score(prior, r, "prior")
    comps = [compare(f"pointing game ({region_name})", "average training lung mask", mean_of(rows["gated_point"]),
                     mean_of(rows["prior_point"]), len(regions)),
             compare(f"mass inside ({region_name})", "average training lung mask", mean_of(rows["gated_mass"]),
                     mean_of(rows["prior_mass"]), len(regions))]
    summary = {k: float(np.mean(v)) for k, v in rows.items()}
    summary["images"] = len(regions)
    return summary, comps


def evaluate(weights: Path, data: Path, threads: int = 1, write_calibration: bool = True) -> dict[str, object]:
    """Compute every number of the module docstring; returns a JSON-ready dict (and writes calibration.json)."""
    torch.set_num_threads(threads)
    model = load_model(weights)
    cfg = model.config
    labels = tuple(cfg.labels)
    tr = np.load(find_npz(data, cfg.input_size, "train", "multires_cxr"))
    va = np.load(find_npz(data, cfg.input_size, "test", "multires_cxr"))
    fields = va["lung_field"] if uses_lung_fields(cfg) else None
    logits, maps = predict(model, va["images"], fields)
    y, y_tr = _columns(va, labels), _columns(tr, labels)
    yk = np.where(y >= 0, y, np.nan)

    # calibration: one temperature per class on the validation logits
    temps = np.array([fit_temperature(logits[:, c], yk[:, c], multiclass=False) for c in range(len(labels))])
    p_raw, p_cal = sigmoid(logits), sigmoid(logits / temps)
    thresholds = [youden_threshold(y[y[:, c] >= 0, c], p_cal[y[:, c] >= 0, c]) for c in range(len(labels))]
    calibration = {"before": calibration_report(p_raw, yk), "after": calibration_report(p_cal, yk),
                   "ece_after_2fold_crossfit": _crossfit_ece(logits, y),
                   "temperature": dict(zip(labels, temps.tolist(), strict=True)),
                   "operating_point": dict(zip(labels, thresholds, strict=True)),
                   "fitted_on": f"validation split ({len(y)} images)"}

    # baseline: logistic regression on 64x64 pixels, one per class, training images with a known label
    f_tr, f_va = pixel_features(tr["images"] / 255.0, 64), pixel_features(va["images"] / 255.0, 64)
    p_base = np.zeros_like(p_raw)
    for c in range(len(labels)):
        k = y_tr[:, c] >= 0
        p_base[:, c] = LogisticBaseline().fit(f_tr[k], y_tr[k, c:c + 1]).predict_proba(f_va)[:, 0]

    eng_m = [_auc_metric(y[:, c], p_cal[:, c]) for c in range(len(labels))]
    base_m = [_auc_metric(y[:, c], p_base[:, c]) for c in range(len(labels))]
    per_class = [compare(f"AUC {n}", BASELINE, eng_m[c], base_m[c], len(y)) for c, n in enumerate(labels)]
    macro = compare("macro AUC", BASELINE, _macro(eng_m), _macro(base_m), len(y))

    # localisation (64x64 map grid)
    n = maps.shape[-1]
    shown = va["lung_field"].astype(np.float64)
    has_tr = tr["has_mask"]
    prior = np.mean([resize_mask(m, n) for m in tr["lung_mask"][has_tr]], axis=0)
    top = np.argmax(p_cal, axis=1)
    loc: dict[str, object] = {}
    loc_comps: list[Comparison] = []
    for region, has_key, mask_key in (("lung mask", "has_mask", "lung_mask"), ("lung boxes", "has_box", "box_mask")):
        idx = np.nonzero(va[has_key])[0]
        if len(idx) < 2:
            continue
        regions = np.stack([resize_mask(va[mask_key][i], n) for i in idx])
        summary, comps = _localisation(maps[idx], top[idx], temps, shown[idx], regions, prior, region)
        loc[region] = summary
        loc_comps += comps

    res: dict[str, object] = {
        "engine": "multires_cxr", "weights": str(weights), "weights_sha256": sha256(weights),
        "config": cfg.to_dict(), "split": "validation = held-out side of engines/multires_cxr/split.json (test.npz)",
        "validation_images": int(len(y)), "validation_patients": int(len(set(va["patientids"].tolist()))),
        "label_counts": {"train": counts(tr["labels"]), "validation": counts(va["labels"]),
                         "candidates": list(CANDIDATES), "kept": list(labels)},
        "per_class": {c.metric: c.to_dict() for c in per_class},
        "validation": macro.to_dict(),
        "calibration": calibration,
        "localisation": {"summary": loc, "comparisons": [c.to_dict() for c in loc_comps]},
        "table": comparison_table([macro, *per_class, *loc_comps]),
    }
    if write_calibration:
        cal = {"weights_sha256": res["weights_sha256"], "labels": list(labels), "temperature": temps.tolist(),
               "operating_point": thresholds, "fitted_on": calibration["fitted_on"],
               "note": "p = sigmoid(logit / T); maps sigmoid(S / T); operating point = Youden's J on validation"}
        write_text_atomic(Path(weights).with_name(CALIBRATION_FILE), json.dumps(cal, indent=1) + "\n")
    return res


def format_table(res: dict) -> str:
    """The comparison table plus label counts and calibration before/after."""
    lc = res["label_counts"]
    lines = [f"validation: {res['validation_images']} images, {res['validation_patients']} patients "
             f"(held-out split; baseline fitted on the training split only)", "",
             "label counts (positives / negatives / unknown), train | validation; kept: " + ", ".join(lc["kept"])]
    for name in lc["candidates"]:
        t, v = lc["train"][name], lc["validation"][name]
        mark = "kept" if name in lc["kept"] else "dropped (< 8 validation positives or negatives)"
        lines.append(f"  {name:22s} {t['pos']:3d}/{t['neg']:3d}/{t['unknown']:3d} | "
                     f"{v['pos']:3d}/{v['neg']:3d}/{v['unknown']:3d}  {mark}")
    cal = res["calibration"]
    b, a = cal["before"], cal["after"]
    lines += ["", res["table"], "",
              f"verdict (macro AUC): {res['validation']['summary']}", "",
              f"calibration (validation, all kept labels): before: <0.02 {b['below_0.02']:.2f}, >0.98 "
              f"{b['above_0.98']:.2f}, ECE {b['ece']:.3f}; after temperature scaling: <0.02 {a['below_0.02']:.2f},"
              f" >0.98 {a['above_0.98']:.2f}, ECE {a['ece']:.3f} (2-fold cross-fitted ECE "
              f"{cal['ece_after_2fold_crossfit']:.3f})",
              "temperatures: " + ", ".join(f"{k} {v:.2f}" for k, v in cal["temperature"].items()),
              "operating points: " + ", ".join(f"{k} {v:.2f}" for k, v in cal["operating_point"].items())]
    for region, s in res["localisation"]["summary"].items():
        lines.append(f"localisation vs {region} ({s['images']} images), top finding's map: shown (lung-gated) "
                     f"pointing {s['gated_point']:.2f} mass {s['gated_mass']:.2f}; raw (ungated) pointing "
                     f"{s['raw_point']:.2f} mass {s['raw_mass']:.2f}; average training lung mask pointing "
                     f"{s['prior_point']:.2f} mass {s['prior_mass']:.2f}")
    return "\n".join(lines)


def side_agreement(weights: Path, cxr_data: Path) -> dict:
    """The map the app shows first (the most probable finding's) on each validation film against the lung its
    clinical note names (:mod:`engines.common.laterality`)."""
    from engines.multires_cxr.engine import MultiResCXREngine
    from viewer.model.volume import Volume

    engine = MultiResCXREngine(weights)

    def map_of(image: np.ndarray, case: laterality.Case) -> np.ndarray:
        return engine.run(Volume(image, modality="OT", spacing_known=False)).overlays[0].volume.array

    return laterality.evaluate(map_of, cxr_data, "multires_cxr map of the most probable finding (shown first)")


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("multires_cxr", "Evaluate multires_cxr against its baseline on validation.", threads=1)
    laterality.add_argument(ap)
    args = ap.parse_args(argv)
    if args.side_agreement:
        res = side_agreement(args.weights, args.side_agreement)
        laterality.report(res, args.weights.parent, "engines.multires_cxr.evaluate", argv)
        return
    res = evaluate(args.weights, args.data, args.threads)
    publish(res, "engines.multires_cxr.evaluate", argv, format_table(res), args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
