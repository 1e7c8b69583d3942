"""Evaluate DERMAE weights against an honest baseline on the validation split (``test.npz`` from :mod:`prepare`).

Usage::

    python -m engines.dermae.evaluate                      # the shipped student, data_prepared/dermae
    python -m engines.dermae.evaluate --weights runs/dermae/student128/model.safetensors --write-calibration

The validation split is the held-out 25 % of the committed ``split.json`` (150 images, by image id, stratified,
seed 20170001); nothing of it is used for training. Printed and written to ``eval.json``:

* **test-time augmentation** (student, default on; ``--no-tta`` turns it off): the engine's logits are the mean
  over the 8 dihedral views of the photo (:func:`engines.dermae.tta.tta_logits`, the same function the engine
  runs); the temperature below is fitted on these averaged logits. The teacher is evaluated on the original view.
* **classification**, engine vs baseline with paired bootstrap 95 % intervals (:func:`engines.common.validation.compare`):
  balanced accuracy (the verdict), per-class F1, macro one-vs-rest ROC AUC. The baseline is a class-weighted
  logistic regression on colour histograms (16 bins per channel) + 32×32 pixels, fitted on the training split only.
  Both predict the arg-max class of their (balanced) outputs; no decision offsets are tuned on validation, so the
  validation numbers are not optimistic.
* **calibration**: the temperature ``T`` fitted on the validation logits (:func:`fit_temperature`; it changes no
  arg-max and no AUC), saturation shares and ECE before and after, plus the ECE when ``T`` is fitted on one half
  of the validation split and scored on the other (2-fold cross-fit: an unbiased ECE).
* **localisation**: the share of the engine's map (as the engine returns it: Grad-CAM evidence on a fixed scale,
  within the estimated lesion region) that falls inside the ISIC lesion mask ("mass inside"), and whether its peak
  does (pointing game), against a centred disc with the mean training lesion area.

``--write-calibration`` stores ``T``, whether it was fitted on TTA logits (``tta``) and the map's fixed scale in
``calibration.json`` beside the weights, which the engine reads at inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engines.common.baseline import LogisticBaseline, histogram_features, pixel_features
from engines.common.calibration import CALIBRATION_FILE, calibration_report, fit_temperature
from engines.common.evaluate import evaluate_parser, publish, write_text_atomic
from engines.common.train import find_npz
from engines.common.validation import Comparison, Interval, compare, comparison_table, mean_of
from engines.dermae.data import CLASSES, SHORT, to_tensor, to_unit
from engines.dermae.metrics import auc_per_class, balanced_accuracy, confusion, f1_per_class
from engines.dermae.region import centred_disc, lesion_map
from engines.dermae.tta import TTA_TEXT, tta_logits
from engines.dermae.weights_io import load_model, read_meta, sha256

MINORITY = ("melanoma", "seborrheic_keratosis")
BASELINE = "logistic regression on colour histograms + 32x32 pixels (training split)"
DISC_BASELINE = "centred disc of the mean training lesion area"

#: percentile of the training images' evidence maps that becomes 1.0 on the engine's fixed map scale
SCALE_PERCENTILE = 99.0
#: display threshold of the map on its fixed [0, 1] scale (the app's default opacity threshold)
MAP_THRESHOLD = 0.4


@torch.no_grad()
def predict_logits(model: torch.nn.Module, kind: str, images: np.ndarray, batch: int = 64,
                   tta: bool = False) -> np.ndarray:
    """uint8 ``[N, S, S, 3]`` → logits ``[N, C]`` (student: standardised input; teacher: [-1, 1]); ``tta``: the
    mean over the 8 dihedral views (:func:`engines.dermae.tta.tta_logits`)."""
    prep = to_tensor if kind == "student" else to_unit
    run = (lambda x: tta_logits(model, x)) if tta else model
    out = [run(prep(images[i:i + batch])).double().numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out)


def predict(model: torch.nn.Module, kind: str, images: np.ndarray, batch: int = 64, tta: bool = False) -> np.ndarray:
    """Uncalibrated class probabilities ``[N, C]`` (softmax of :func:`predict_logits`)."""
    return softmax(predict_logits(model, kind, images, batch, tta))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def baseline_features(images: np.ndarray) -> np.ndarray:
    """``[N, 3·32·32 + 3·16]``: 32×32 RGB pixels in [0, 1] and 16-bin colour histograms of uint8 images."""
    x = np.asarray(images)
    return np.concatenate([pixel_features(x.astype(np.float32) / 255.0, 32), histogram_features(x, 16, (0, 256))], 1)


def scores(y: np.ndarray, probs: np.ndarray) -> dict[str, object]:
    """Point metrics for labels ``y [N]`` and ``probs [N, C]`` (prediction = arg-max)."""
    c = probs.shape[1]
    pred = probs.argmax(1)
    f1 = f1_per_class(y, pred, c)
    auc = auc_per_class(y, probs)
    return {
        "balanced_accuracy": round(balanced_accuracy(y, pred, c), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "recall": {CLASSES[k]: round(float(((pred == k) & (y == k)).sum() / max((y == k).sum(), 1)), 4)
                   for k in range(c)},
        "f1": {CLASSES[k]: round(float(f1[k]), 4) for k in range(c)},
        "macro_f1": round(float(np.nanmean(f1)), 4),
        "minority_f1_mean": round(float(np.nanmean([f1[CLASSES.index(m)] for m in MINORITY])), 4),
        "auc": {CLASSES[k]: round(float(auc[k]), 4) for k in range(c)},
        "macro_auc": round(float(np.nanmean(auc)), 4),
        "predicted_counts": {CLASSES[k]: int((pred == k).sum()) for k in range(c)},
        "confusion": confusion(y, pred, c).tolist(),
    }


def _metric(y: np.ndarray, probs: np.ndarray, name: str):  # type: ignore[no-untyped-def]
    """A case metric ``idx -> value`` for :func:`compare` (NaN where undefined in a resample)."""
    c = probs.shape[1]
    pred = probs.argmax(1)

    def ba(idx: np.ndarray) -> float:
        return balanced_accuracy(y[idx], pred[idx], c)

    def macro_auc(idx: np.ndarray) -> float:
        a = auc_per_class(y[idx], probs[idx])
        return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

    def f1_of(k: int):  # type: ignore[no-untyped-def]
        return lambda idx: float(f1_per_class(y[idx], pred[idx], c)[k])

    if name == "balanced_accuracy":
        return ba
    if name == "macro_auc":
        return macro_auc
    return f1_of(CLASSES.index(name.removeprefix("f1_")))


def classification_rows(y: np.ndarray, engine: np.ndarray, baseline: np.ndarray, seed: int = 0) -> list[Comparison]:
    """Balanced accuracy (first: the verdict), F1 per class and macro AUC, engine vs baseline, paired bootstrap."""
    rows = [("balanced accuracy", "balanced_accuracy")]
    rows += [(f"F1 {CLASSES[k]}", f"f1_{CLASSES[k]}") for k in range(len(CLASSES))]
    rows += [("macro AUC (one-vs-rest)", "macro_auc")]
    return [compare(label, BASELINE, _metric(y, engine, key), _metric(y, baseline, key), len(y), seed=seed)
            for label, key in rows]


def crossfit_temperature(logits: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Probabilities ``[N, C]`` where each half of the cases is scaled by the ``T`` fitted on the other half."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):  # stratified halves
        idx = rng.permutation(np.flatnonzero(y == c))
        half[idx[: len(idx) // 2]] = True
    out = np.empty_like(np.asarray(logits, dtype=np.float64))
    for part in (half, ~half):
        t = fit_temperature(logits[~part], y[~part], multiclass=True)
        out[part] = softmax(logits[part], t)
    return out


def calibration(logits: np.ndarray, y: np.ndarray) -> dict[str, object]:
    """``T`` fitted on validation, the report before / after, and the 2-fold cross-fitted report."""
    t = fit_temperature(logits, y, multiclass=True)
    rnd = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731
    return {"temperature": round(t, 4), "fitted_on": f"validation split ({len(y)} images), NLL",
            "before": rnd(calibration_report(softmax(logits), y)),
            "after": rnd(calibration_report(softmax(logits, t), y)),
            "after_crossfit": rnd(calibration_report(crossfit_temperature(logits, y), y))}


def evidence_maps(model: torch.nn.Module, images: np.ndarray, temperature: float = 1.0,
                  batch: int = 32, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(logits ``[N, C]``, Grad-CAM evidence ``[N, n, n]``) for the arg-max class, in logit units / ``T``.

    With ``tta`` the logits are the 8-view means (:func:`engines.dermae.tta.tta_logits`) and the map is the
    Grad-CAM of their arg-max class on the original view, as in the engine.

    For the student's GAP + linear head, Grad-CAM × (n·n) is exactly ReLU of the class's local logit contribution
    ``Σ_k w_ck A_k(i, j)``; its mean over the grid is at most the class logit (minus bias). Dividing by ``T`` puts
    it on the calibrated logits' scale.
    """
    from engines.dermae.model import grad_cam

    ls, cs = [], []
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch])
        if tta:
            logits = tta_logits(model, x)
            _, cam = grad_cam(model, x, logits.argmax(1))
        else:
            logits, cam = grad_cam(model, x)
        ls.append(logits.double().numpy())
        cs.append((cam * cam.shape[-1] * cam.shape[-2] / temperature).double().numpy())
    return np.concatenate(ls), np.concatenate(cs)


def mass_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: Σ map·mask / Σ map (0 for an empty map: nothing pointed at)."""
    m = np.asarray(maps, dtype=np.float64)
    inside = (m * (np.asarray(masks) > 0)).sum((1, 2))
    total = m.sum((1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1), 0.0)


def pointing(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: 1.0 when the map's maximum lies inside the mask (0 for an empty map)."""
    m = np.asarray(maps).reshape(len(maps), -1)
    hit = (np.asarray(masks).reshape(len(maps), -1) > 0)[np.arange(len(maps)), m.argmax(1)]
    return np.where(m.max(1) > 0, hit, False).astype(np.float64)


def localisation(maps: np.ndarray, masks: np.ndarray, disc_radius: float, seed: int = 0) -> list[Comparison]:
    """Mass inside the lesion mask (of the map clipped to [0, 1], as shown) and pointing game (peak of the
    unclipped map), engine map (:func:`engines.dermae.region.lesion_map`) vs a centred disc, on the same images."""
    disc = np.broadcast_to(centred_disc(masks.shape[-1], disc_radius).astype(np.float64), masks.shape)
    n = len(masks)
    return [compare("map mass inside lesion", DISC_BASELINE, mean_of(mass_inside(np.clip(maps, 0, 1), masks)),
                    mean_of(mass_inside(disc, masks)), n, seed=seed),
            compare("pointing game (peak in lesion)", DISC_BASELINE + " (peak = centre)",
                    mean_of(pointing(maps, masks)), mean_of(pointing(disc + 1e-3 * disc_peak(masks.shape[-1]), masks)),
                    n, seed=seed)]


def disc_peak(size: int) -> np.ndarray:
    """A map peaking at the image centre (the disc baseline's peak for the pointing game)."""
    c = (np.arange(size) + 0.5) / size - 0.5
    return -(c[:, None] ** 2 + c[None, :] ** 2)


def evaluate(weights: Path, data: Path, threads: int = 1, tta: bool = True) -> dict[str, object]:
    """Engine vs baseline on the validation split, calibration and localisation; JSON-ready dict.

    ``tta`` (student only): logits averaged over the 8 dihedral views, as the engine does; the teacher always
    sees the original view.
    """
    torch.set_num_threads(threads)
    cfg, kind = read_meta(weights)
    model = load_model(weights)
    train = np.load(find_npz(data, cfg.image_size, "train", "dermae"))
    val = np.load(find_npz(data, cfg.image_size, "test", "dermae"))
    y, y_train = val["labels"], train["labels"]
    tta = tta and kind == "student"
    if kind == "student":
        logits, cams = evidence_maps(model, val["images"], tta=tta)  # type: ignore[arg-type]
    else:
        logits, cams = predict_logits(model, kind, val["images"]), None
    base = LogisticBaseline().fit(baseline_features(train["images"]), y_train, len(CLASSES))
    base_probs = base.predict_proba(baseline_features(val["images"]))
    cal = calibration(logits, y)
    t = float(cal["temperature"])  # type: ignore[arg-type]
    probs = softmax(logits, t)
    rows = classification_rows(y, probs, base_probs)
    res: dict[str, object] = {
        "engine": "dermae", "model": kind, "weights": str(weights), "weights_sha256": sha256(weights),
        "params": int(sum(p.numel() for p in model.parameters())), "config": cfg.to_dict(),
        "split": "validation = held-out 25 % of engines/dermae/split.json (test.npz); never trained on",
        "validation_images": int(len(y)), "train_images": int(len(y_train)),
        "validation_counts": {CLASSES[k]: int((y == k).sum()) for k in range(len(CLASSES))},
        "decision": "arg-max of the class-balanced model's outputs (no offsets tuned on validation)",
        "tta": tta, "logits": TTA_TEXT if tta else "original view only",
        "engine_scores": scores(y, probs), "baseline_scores": scores(y, base_probs), "baseline": BASELINE,
        "calibration": cal, "comparisons": [r.to_dict() for r in rows], "validation": rows[0].to_dict(),
    }
    if cams is not None:
        # the map's fixed scale comes from the TRAINING images (their arg-max class evidence), not validation
        _, cams_train = evidence_maps(model, train["images"], t, tta=tta)  # type: ignore[arg-type]
        scale = float(np.percentile(cams_train, SCALE_PERCENTILE))
        maps = lesion_map(cams / t, val["images"], scale)
        disc_r = float(np.sqrt(train["masks"].mean() / np.pi))
        loc = localisation(maps, val["masks"], disc_r)
        res["map"] = {"scale_logit_units": round(scale, 4), "scale_from": f"{SCALE_PERCENTILE:g}th percentile of "
                      "the training images' Grad-CAM evidence (arg-max class, logit units / T)",
                      "disc_radius_fraction": round(disc_r, 4),
                      "mean_lit_fraction_at_threshold": round(float((maps >= MAP_THRESHOLD).mean()), 4),
                      "mean_lesion_fraction": round(float(val["masks"].mean()), 4)}
        res["localisation"] = [r.to_dict() for r in loc]
    return res


def write_calibration(res: dict[str, object], weights: Path) -> Path:
    """``calibration.json`` beside ``weights``: T (validation NLL), the map scale (training) and what they fit."""
    cal = res["calibration"]
    out = {"weights_sha256": res["weights_sha256"], "temperature": cal["temperature"],  # type: ignore[index]
           "temperature_fitted_on": cal["fitted_on"],  # type: ignore[index]
           "tta": bool(res.get("tta", False)), "logits": res.get("logits", "original view only"),
           "map_scale_logit_units": res.get("map", {}).get("scale_logit_units"),  # type: ignore[union-attr]
           "map_threshold": MAP_THRESHOLD,
           "map_scale_fitted_on": "training split"}
    path = weights.with_name(CALIBRATION_FILE)
    write_text_atomic(path, json.dumps(out, indent=1) + "\n")
    return path


def format_table(res: dict[str, object]) -> str:
    """Plain-text report of :func:`evaluate`'s result."""
    counts = res["validation_counts"]
    e, b = res["engine_scores"], res["baseline_scores"]
    lines = [f"validation split: {res['validation_images']} images ({', '.join(f'{k} {v}' for k, v in counts.items())}); "  # type: ignore[union-attr]
             f"model: {res['model']} ({res['params']:,} parameters, {res['config']['image_size']} px); "  # type: ignore[index]
             f"logits: {res.get('logits', 'original view only')}",
             "", comparison_table(_comparisons(res["comparisons"])), ""]
    lines.append(f"recall engine   {e['recall']}  predicted {e['predicted_counts']}")  # type: ignore[index]
    lines.append(f"recall baseline {b['recall']}  predicted {b['predicted_counts']}")  # type: ignore[index]
    lines.append("confusion engine (rows true, cols predicted " + "/".join(SHORT) + f"): {e['confusion']}")  # type: ignore[index]
    cal = res["calibration"]
    lines.append(f"calibration: T = {cal['temperature']} fitted on validation; before {cal['before']}; "  # type: ignore[index]
                 f"after {cal['after']}; after, 2-fold cross-fitted T {cal['after_crossfit']}")  # type: ignore[index]
    if "localisation" in res:
        lines += ["", comparison_table(_comparisons(res["localisation"])), f"map: {res['map']}"]
    lines += ["", "VERDICT: " + res["validation"]["summary"]]  # type: ignore[index]
    return "\n".join(lines)


def _comparisons(dicts: object) -> list[Comparison]:
    """:class:`Comparison` objects back from their ``to_dict`` form (for the printed table)."""
    out = []
    for d in dicts:  # type: ignore[attr-defined]
        kw = {k: v for k, v in d.items() if k not in ("validated", "summary")}
        for k in ("engine", "reference", "difference"):
            kw[k] = Interval(**kw[k])
        out.append(Comparison(**kw))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("dermae", "Evaluate DERMAE weights against the baseline on the validation split.")
    ap.add_argument("--write-calibration", action="store_true",
                    help=f"store T and the map scale in {CALIBRATION_FILE} beside the weights")
    ap.add_argument("--no-tta", action="store_true",
                    help="student: the original view only (default: logits averaged over the 8 dihedral views)")
    args = ap.parse_args(argv)
    res = evaluate(args.weights, args.data, args.threads, tta=not args.no_tta)
    if args.write_calibration:
        res["calibration_file"] = str(write_calibration(res, args.weights))
    name = "eval.json" if res["model"] == "student" else f"eval_{res['model']}.json"
    publish(res, "engines.dermae.evaluate", argv, format_table(res), args.out or args.weights.with_name(name))


if __name__ == "__main__":
    main()


def measure_latency(model: torch.nn.Module, size: int, repeats: int = 30, threads: int | None = None,
                    views: int = 1) -> dict[str, float]:
    """CPU forward latency of ``[views, 3, size, size]`` (one image; ``views`` = 8: its TTA batch): median / p90
    seconds after 3 warm-ups."""
    import time

    if threads is not None:
        torch.set_num_threads(threads)
    x = torch.randn(views, 3, size, size)
    ts = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            t = time.perf_counter()
            model(x)
            if i >= 3:
                ts.append(time.perf_counter() - t)
    return {"median_ms": round(float(np.median(ts)) * 1e3, 3), "p90_ms": round(float(np.percentile(ts, 90)) * 1e3, 3),
            "repeats": repeats, "threads": torch.get_num_threads(), "views": views}
