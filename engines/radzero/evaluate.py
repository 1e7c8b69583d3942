"""Evaluate RadZero weights zero-shot on the validation (held-out) split, beside honest baselines.

Usage::

    python -m engines.radzero.evaluate --weights resources/weights/radzero/model.safetensors \
        --data data_prepared/radzero [--out eval.json] [--store-calibration]

Validation = ``test.npz`` of :mod:`engines.radzero.prepare` (the held-out patients of
``engines/multires_cxr/split.json``: by patient, near-duplicates joined, seed 20180321). Nothing of it is used for
training or for the display threshold; only the score temperature is fitted on it (as issue 18 asks), and the
calibration numbers after scaling are also given cross-fitted (2 patient folds: fitted on one, measured on the
other).

* **Zero-shot classification**: P = softmax of the VL-CABS logits of "There is {finding}." and "There is no
  {finding}." (optionally divided by the temperature T). Scored classes = those the data supports
  (:func:`supported_classes`: ≥ 10 positives and ≥ 10 negatives in training, ≥ 4 of each in validation; the
  positive counts of every class are printed). Baseline: :class:`engines.common.baseline.LogisticBaseline` on
  64 × 64 pixels, fitted per class on the training split. Metric: mean ROC AUC over the scored classes, paired
  bootstrap over validation images (:func:`engines.common.validation.compare`) — the headline verdict that the
  app reads from ``card.json["validation"]``.
* **Calibration**: temperature T fitted on the validation logits of the scored classes
  (:func:`engines.common.calibration.fit_temperature`), saturation shares and ECE before/after.
* **Localisation** (the lungs as a proxy: the data has no lesion boxes): for every validation image with a lung
  mask (lungVAE) or lung boxes and a positive class, the map of each positive class prompt (sigmoid(cos/τ),
  bilinear to the 224-px grid, gated to the lung fields by :func:`engines.radzero.gate.lung_gate`). Per image:
  pointing game (the map's maximum inside the region) and mass inside the region (Σ map·region / Σ map), mean
  over its prompts. Baseline: the average training lung mask as the map; for the mass also the gate alone as a
  uniform map (what the model adds beyond the gate). The ungated map's numbers (and the
  share of its peaks in the outer 10 % border) are printed too, so the gate's part is visible.
* **Dice** of the gated map ≥ θ (θ chosen on TRAINING lung masks, stored in the weights; also the overlay's display
  threshold) against the lung mask, beside the gate alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common import laterality
from engines.common.baseline import LogisticBaseline, mean_mask, pixel_features
from engines.common.calibration import CALIBRATION_FILE, calibration_report, fit_temperature
from engines.common.evaluate import evaluate_parser, publish, write_text_atomic
from engines.common.train import find_npz
from engines.common.validation import CaseMetric, Comparison, bootstrap, compare, comparison_table, mean_of
from engines.radzero.gate import gate_map, lung_gate
from engines.radzero.metrics import choose_threshold, dice, pointing_hit, roc_auc, zero_shot_prob
from engines.radzero.model import RadZero, to_input
from engines.radzero.weights_io import load_model, set_metadata, threshold_of
from engines.weights import sha256_file

MIN_TRAIN, MIN_VAL = 10, 4
BASELINE_PIXELS = 64
BORDER = 0.1

#: The paper's figures are NOT quoted: no copy of arXiv 2504.07416 was reachable offline to check them.
PAPER_FIGURES = ("unverified — RadZero's tables (zero-shot AUC/F1/ACC on CheXpert, ChestX-ray14, …; pointing "
                 "game on MS-CXR/ChestX-ray14; Dice on RSNA/SIIM) could not be read offline, so no number is "
                 "quoted; they are on different data (public benchmarks with lesion annotations) and not "
                 "comparable with the lung-region proxies here.")


@torch.no_grad()
def encode_images(model: RadZero, images: np.ndarray, batch: int = 16) -> torch.Tensor:
    """uint8 ``[N, S, S]`` → head-ready tokens ``[N, 1 + g·g, D]``."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).float() / 255.0
        out.append(model.encode_image(to_input(x, model.config)))
    return torch.cat(out)


@torch.no_grad()
def logits_and_maps(model: RadZero, v: torch.Tensor, text_emb: np.ndarray,
                    size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tokens ``[B, N+1, D]`` and text embeddings ``[T, 384]`` → (scaled logits ``[B, T]``, maps).

    Maps (when ``size`` is given): sigmoid of the patch scores, bilinearly upsampled (align_corners False) to
    ``size`` → ``[B, T, H, W]`` in (0, 1).
    """
    t = model.encode_text(torch.from_numpy(np.asarray(text_emb, np.float32)))
    logits, score = model.head(v, t)
    if size is None:
        return logits.numpy(), None
    g = model.config.grid
    b, nt, _ = score.shape
    up = F.interpolate(score.reshape(b * nt, 1, g, g), size=size, mode="bilinear", align_corners=False)
    return logits.numpy(), torch.sigmoid(up).reshape(b, nt, *size).numpy()


def positive_classes(d: np.lib.npyio.NpzFile, i: int) -> list[int]:
    """Indices into ``class_names`` positive for image ``i`` (NIH labels == 1, COVID-19 from the finding)."""
    n_nih = d["labels"].shape[1]
    out = [c for c in range(n_nih) if d["labels"][i, c] == 1]
    if int(d["covid"][i]) == 1:
        out.append(n_nih)
    return out


def grounding_pairs(model: RadZero, d: np.lib.npyio.NpzFile, has_key: str, mask_key: str,
                    v: torch.Tensor | None = None) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(image, class, similarity map [S, S], region [S, S]) for positive classes of images with a region."""
    pairs = []
    for i in np.nonzero(d[has_key])[0]:
        cls = positive_classes(d, int(i))
        if not cls:
            continue
        vi = v[i:i + 1] if v is not None else encode_images(model, d["images"][i:i + 1])
        _, maps = logits_and_maps(model, vi, d["prompt_pos_emb"][cls], d["images"].shape[1:])
        assert maps is not None
        pairs += [(int(i), c, maps[0, k], d[mask_key][i]) for k, c in enumerate(cls)]
    return pairs


def regions_of(d: np.lib.npyio.NpzFile) -> np.ndarray:
    """Lung region per image ``[N, S, S]`` (0/1): the lungVAE mask where there is one, else the lung boxes."""
    return np.where(d["has_mask"][:, None, None], d["lung_mask"], d["box_mask"])


def gated_maps(images: np.ndarray, maps: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, str]:
    """``maps`` ``[B, T, S, S]`` gated to each image's lung fields (:func:`lung_gate`); and the gate's name."""
    out = np.empty_like(maps)
    source = ""
    for b, img in enumerate(images):
        g, source = lung_gate(img, prior)
        for t in range(maps.shape[1]):
            out[b, t] = gate_map(maps[b, t], g)
    return out, source


def choose_threshold_on_train(weights: Path, data: Path, threads: int | None = None) -> dict[str, object]:
    """Pick the Dice/display threshold of the GATED map on the TRAINING images' lung masks; store it in the
    weights' metadata."""
    if threads:
        torch.set_num_threads(threads)
    model = load_model(weights)
    d = np.load(find_npz(data, model.config.image_size, "train", "radzero"))
    prior = mean_mask(d["lung_mask"][d["has_mask"].astype(bool)])
    pairs = grounding_pairs(model, d, "has_mask", "lung_mask")
    sims = [gated_maps(d["images"][i:i + 1], s[None, None], prior)[0][0, 0] for i, _, s, _ in pairs]
    theta, means = choose_threshold(sims, [p[3] for p in pairs])
    source = (f"grid 0.05..0.95 step 0.05, best mean Dice of the lung-gated map on {len(pairs)} (training image, "
              "positive prompt) pairs with lungVAE lung masks of the TRAINING split; fixed before evaluating the "
              "validation split")
    set_metadata(weights, dice_threshold=f"{theta:.2f}", dice_threshold_source=source)
    return {"threshold": theta, "source": source, "train_mean_dice": {f"{k:.2f}": round(v, 4) for k, v in means.items()}}


def class_targets(d: np.lib.npyio.NpzFile) -> np.ndarray:
    """``[N, C]`` targets of ``class_names``: the 14 rule-mapped labels (1/0/-1) and COVID-19 (finding column)."""
    return np.concatenate([d["labels"], d["covid"][:, None].astype(np.float32)], axis=1)


def supported_classes(train: np.ndarray, val: np.ndarray) -> tuple[list[int], dict[int, dict[str, int]]]:
    """Classes with ≥ MIN_TRAIN positives and negatives in training and ≥ MIN_VAL of each in validation, and
    the counts of every class (``{c: {train_pos, train_neg, val_pos, val_neg}}``)."""
    counts = {c: {"train_pos": int((train[:, c] == 1).sum()), "train_neg": int((train[:, c] == 0).sum()),
                  "val_pos": int((val[:, c] == 1).sum()), "val_neg": int((val[:, c] == 0).sum())}
              for c in range(train.shape[1])}
    keep = [c for c, k in counts.items() if min(k["train_pos"], k["train_neg"]) >= MIN_TRAIN
            and min(k["val_pos"], k["val_neg"]) >= MIN_VAL]
    return keep, counts


def mean_auc(targets: np.ndarray, scores: np.ndarray, classes: list[int]) -> CaseMetric:
    """A case metric: the mean ROC AUC over ``classes`` (each on its known labels; NaN-free classes only)."""

    def metric(idx: np.ndarray) -> float:
        aucs = []
        for k, c in enumerate(classes):
            y, s = targets[idx, c], scores[idx, k]
            known = y >= 0
            a = roc_auc(y[known], s[known])
            if np.isfinite(a):
                aucs.append(a)
        return float(np.mean(aucs)) if aucs else float("nan")

    return metric


def baseline_scores(train: np.lib.npyio.NpzFile, val: np.lib.npyio.NpzFile, classes: list[int]) -> np.ndarray:
    """Logistic regression on 64 × 64 pixels, one per class, fitted on the training images with a known label;
    validation probabilities ``[N_val, len(classes)]``."""
    xt = pixel_features(train["images"].astype(np.float32) / 255.0, BASELINE_PIXELS)
    xv = pixel_features(val["images"].astype(np.float32) / 255.0, BASELINE_PIXELS)
    yt = class_targets(train)
    out = np.empty((len(xv), len(classes)))
    for k, c in enumerate(classes):
        known = yt[:, c] >= 0
        model = LogisticBaseline(l2=1e-2).fit(xt[known], yt[known, c][:, None])
        out[:, k] = model.predict_proba(xv)[:, 0]
    return out


def patient_folds(patients: np.ndarray) -> np.ndarray:
    """Fold 0/1 per image: sorted unique patient ids alternate between the two folds (deterministic)."""
    order = {p: i % 2 for i, p in enumerate(sorted(set(patients.tolist())))}
    return np.array([order[p] for p in patients.tolist()])


def calibrate(z: np.ndarray, y: np.ndarray, folds: np.ndarray, z_all: np.ndarray) -> dict[str, object]:
    """Temperature of the zero-shot logit differences ``z`` (``[N, K]``, labels ``y`` 1/0/NaN) on validation, and
    saturation/ECE before, after (fitted on all of validation) and after cross-fitting (2 patient folds).
    ``z_all`` ``[N, C]``: every class prompt's logit difference, for the saturation of what the user sees."""
    t = fit_temperature(z, y, multiclass=False)
    cross = np.empty_like(z)
    for f in (0, 1):
        tf = fit_temperature(z[folds != f], y[folds != f], multiclass=False)
        cross[folds == f] = z[folds == f] / tf
    rnd = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    return {"temperature": round(t, 4), "fitted_on": "validation logits of the scored classes (binary NLL)",
            "before": rnd(calibration_report(sig(z), y)), "after": rnd(calibration_report(sig(z / t), y)),
            "after_crossfit": rnd(calibration_report(sig(cross), y)),
            "all_prompts_before": rnd(calibration_report(sig(z_all), np.full(z_all.shape, np.nan))),
            "all_prompts_after": rnd(calibration_report(sig(z_all / t), np.full(z_all.shape, np.nan)))}


def mass_inside(sim: np.ndarray, region: np.ndarray) -> float:
    """Σ sim·region / Σ sim (0 for an all-zero map)."""
    tot = float(sim.sum())
    return float((sim * region).sum() / tot) if tot > 0 else 0.0


def in_border(sim: np.ndarray, share: float = BORDER) -> bool:
    """Whether the map's maximum lies in the outer ``share`` of the image on any side."""
    j, i = np.unravel_index(int(np.argmax(sim)), sim.shape)
    h, w = sim.shape
    return bool(j < share * h or j >= (1 - share) * h or i < share * w or i >= (1 - share) * w)


def localisation(model: RadZero, d: np.lib.npyio.NpzFile, v: torch.Tensor, prior: np.ndarray, has_key: str,
                 theta: float) -> dict[str, np.ndarray | str]:
    """Per validation image with a region (``has_key``) and a positive class: the numbers of the module docstring
    (each the mean over the image's positive prompts)."""
    region_all = regions_of(d)
    rows: dict[str, list[float]] = {k: [] for k in ("point", "mass", "point_raw", "mass_raw", "border_raw",
                                                    "border", "dice", "base_point", "base_mass", "gate_dice",
                                                    "gate_mass")}
    source = ""
    base_peak = prior >= prior.max()
    for i in np.nonzero(d[has_key])[0]:
        cls = positive_classes(d, int(i))
        if not cls:
            continue
        r = region_all[i].astype(bool)
        _, maps = logits_and_maps(model, v[i:i + 1], d["prompt_pos_emb"][cls], d["images"].shape[1:])
        assert maps is not None
        g, source = lung_gate(d["images"][i], prior)
        gm = np.stack([gate_map(m, g) for m in maps[0]])
        rows["point"].append(np.mean([pointing_hit(m, r) for m in gm]))
        rows["mass"].append(np.mean([mass_inside(m, r) for m in gm]))
        rows["border"].append(np.mean([in_border(m) for m in gm]))
        rows["dice"].append(np.mean([dice(m, r, theta) for m in gm]))
        rows["point_raw"].append(np.mean([pointing_hit(m, r) for m in maps[0]]))
        rows["mass_raw"].append(np.mean([mass_inside(m, r) for m in maps[0]]))
        rows["border_raw"].append(np.mean([in_border(m) for m in maps[0]]))
        rows["base_point"].append(float(r[base_peak].mean()))
        rows["base_mass"].append(mass_inside(prior, r))
        rows["gate_dice"].append(dice(g.astype(np.float32), r, 0.5))
        rows["gate_mass"].append(mass_inside(g.astype(np.float32), r))
    return {**{k: np.asarray(x, np.float64) for k, x in rows.items()}, "gate": source}


def evaluate(weights: Path, data: Path, threads: int = 1) -> dict[str, object]:
    """Every number of the module docstring; a JSON-ready dict."""
    torch.set_num_threads(threads)
    model = load_model(weights)
    thr = threshold_of(weights)
    if thr is None:
        raise SystemExit(f"{weights} carries no Dice threshold chosen on training data; run "
                         "`python -m engines.radzero.evaluate --choose-threshold` (uses the TRAIN split) first")
    theta, theta_source = thr
    size = model.config.image_size
    tr = np.load(find_npz(data, size, "train", "radzero"))
    d = np.load(find_npz(data, size, "test", "radzero"))
    prior = mean_mask(tr["lung_mask"][tr["has_mask"].astype(bool)])
    v = encode_images(model, d["images"])
    names = [str(x) for x in d["class_names"]]
    lp, _ = logits_and_maps(model, v, d["prompt_pos_emb"])
    ln, _ = logits_and_maps(model, v, d["prompt_neg_emb"])
    z_all = lp.astype(np.float64) - ln.astype(np.float64)
    yv, yt = class_targets(d), class_targets(tr)
    classes, counts = supported_classes(yt, yv)
    if not classes:
        raise SystemExit("no class has enough positives and negatives to score")
    z = z_all[:, classes]
    y = np.where(yv[:, classes] >= 0, yv[:, classes], np.nan)
    calib = calibrate(z, y, patient_folds(d["patientids"]), z_all)
    t = float(calib["temperature"])  # type: ignore[arg-type]
    probs = zero_shot_prob(z / t, 0.0)
    base = baseline_scores(tr, d, classes)
    n = len(d["images"])
    base_name = f"logistic regression on {BASELINE_PIXELS}x{BASELINE_PIXELS} pixels (train split)"
    cls_names = [names[c] for c in classes]
    comps: list[Comparison] = [compare(f"zero-shot AUC, mean of {len(classes)}", base_name,
                                       mean_auc(yv, probs, classes), mean_auc(yv, base, classes), n)]
    per_class: dict[str, dict[str, object]] = {}
    for k, c in enumerate(classes):
        e = bootstrap(mean_auc(yv, probs[:, [k]], [c]), n)
        b = bootstrap(mean_auc(yv, base[:, [k]], [c]), n)
        per_class[names[c]] = {"engine_auc": e.text(), "baseline_auc": b.text(), **counts[c]}
    loc: dict[str, object] = {}
    for region, has_key in (("lung mask", "has_mask"), ("lung boxes", "has_box")):
        r = localisation(model, d, v, prior, has_key, theta)
        m = len(r["point"])
        if m < 2:
            continue
        comps.append(compare(f"pointing game, {region}", "average training lung mask (its peak)",
                             mean_of(r["point"]), mean_of(r["base_point"]), m))
        comps.append(compare(f"mass inside {region}", "average training lung mask as the map",
                             mean_of(r["mass"]), mean_of(r["base_mass"]), m))
        comps.append(compare(f"mass inside {region}", f"the gate alone as a uniform map ({r['gate']})",
                             mean_of(r["mass"]), mean_of(r["gate_mass"]), m))
        loc[region] = {"images": m, "gate": r["gate"],
                       **{k: round(float(np.mean(x)), 4) for k, x in r.items() if k != "gate"}}
    headline = comps[0]
    return {
        "engine": "radzero", "weights": str(weights), "weights_sha256": sha256_file(weights),
        "config": model.config.to_dict(), "split": "validation = held-out test.npz (engines/multires_cxr/split.json)",
        "validation_images": n, "validation_patients": int(len(set(d["patientids"].tolist()))),
        "tau": round(float(model.head_params.tau.detach()), 5),
        "classes": {"scored": cls_names, "rule": f">= {MIN_TRAIN} positives and negatives in training, >= {MIN_VAL} "
                    "of each in validation",
                    "counts": {names[c]: k for c, k in counts.items()}, "per_class": per_class,
                    "prompts": "There is {finding}. vs There is no {finding}. (softmax of the two logits / T)"},
        "calibration": calib, "localisation": loc,
        "comparisons": [c.to_dict() for c in comps], "validation": headline.to_dict(),
        "table": comparison_table(comps), "dice_threshold": theta, "dice_threshold_source": theta_source,
        "paper_figures": PAPER_FIGURES,
    }


def format_table(res: dict) -> str:
    """A plain-text report of :func:`evaluate`'s result."""
    c = res["classes"]
    lines = [f"validation split: {res['validation_images']} images, {res['validation_patients']} patients "
             f"(held out by patient); τ = {res['tau']}",
             f"positive / negative counts (train | validation); scored: {', '.join(c['scored'])} ({c['rule']})"]
    for name, k in c["counts"].items():
        lines.append(f"  {name:20s} {k['train_pos']:4d} / {k['train_neg']:<4d} | {k['val_pos']:3d} / {k['val_neg']}")
    lines.append("per-class AUC [95% CI]: engine (zero-shot, calibrated) vs baseline")
    for name, k in c["per_class"].items():
        lines.append(f"  {name:20s} {k['engine_auc']}  vs  {k['baseline_auc']}")
    cal = res["calibration"]
    lines.append(f"calibration: T = {cal['temperature']} (fitted on validation); scored classes "
                 f"<0.02 / >0.98 / ECE: before {cal['before']['below_0.02']:.2f} / {cal['before']['above_0.98']:.2f} "
                 f"/ {cal['before']['ece']:.3f}, after {cal['after']['below_0.02']:.2f} / "
                 f"{cal['after']['above_0.98']:.2f} / {cal['after']['ece']:.3f}, cross-fitted ECE "
                 f"{cal['after_crossfit']['ece']:.3f}; all {len(c['counts'])} prompts <0.02 / >0.98: before "
                 f"{cal['all_prompts_before']['below_0.02']:.2f} / {cal['all_prompts_before']['above_0.98']:.2f}, "
                 f"after {cal['all_prompts_after']['below_0.02']:.2f} / {cal['all_prompts_after']['above_0.98']:.2f}")
    for region, r in res["localisation"].items():
        lines.append(f"localisation, {region} ({r['images']} images, gate: {r['gate']}): ungated map pointing "
                     f"{r['point_raw']:.3f}, mass inside {r['mass_raw']:.3f}, peak in outer 10 % border "
                     f"{r['border_raw']:.3f}; gated: border {r['border']:.3f}, Dice at θ {res['dice_threshold']:.2f} "
                     f"{r['dice']:.3f} (gate alone {r['gate_dice']:.3f})")
    lines += ["", res["table"], "", "verdict: " + res["validation"]["summary"]]
    return "\n".join(lines)


def store_calibration(weights: Path, res: dict) -> Path:
    """Write ``calibration.json`` beside the weights: the score temperature and the display threshold, keyed by
    the weights' SHA-256 (the engine applies them only to that file)."""
    cal = res["calibration"]
    out = weights.with_name(CALIBRATION_FILE)
    write_text_atomic(out, json.dumps({
        "weights_sha256": sha256_file(weights), "score_temperature": cal["temperature"],
        "score_temperature_fitted_on": f"{res['validation_images']} validation images: {cal['fitted_on']}",
        "map_threshold": res["dice_threshold"], "map_threshold_source": res["dice_threshold_source"],
        "scored_classes": res["classes"]["scored"]}, indent=1) + "\n")
    return out


def side_agreement(weights: Path, cxr_data: Path) -> dict:
    """The app's map for each validation film's finding sentence (the note's own words as the query) against the
    lung the note names (:mod:`engines.common.laterality`)."""
    from engines.radzero.engine import RadZeroEngine
    from viewer.model.volume import Volume

    engine = RadZeroEngine(weights)

    def map_of(image: np.ndarray, case: laterality.Case) -> np.ndarray:
        return engine.run(Volume(image, modality="OT", spacing_known=False), case.sentence).overlays[0].volume.array

    return laterality.evaluate(map_of, cxr_data, "RadZero similarity map for the note's finding sentence")


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("radzero", "Evaluate RadZero zero-shot on the validation split beside baselines.")
    ap.add_argument("--choose-threshold", action="store_true",
                    help="(re)choose the Dice threshold on the TRAIN split, store it in the weights, then stop")
    ap.add_argument("--store-calibration", action="store_true",
                    help="write calibration.json (temperature, display threshold) beside the weights")
    laterality.add_argument(ap)
    args = ap.parse_args(argv)
    if args.side_agreement:
        res = side_agreement(args.weights, args.side_agreement)
        laterality.report(res, args.weights.parent, "engines.radzero.evaluate", argv)
        return
    if args.choose_threshold:
        print(json.dumps(choose_threshold_on_train(args.weights, args.data, args.threads), indent=1))
        return
    res = evaluate(args.weights, args.data, args.threads)
    publish(res, "engines.radzero.evaluate", argv, format_table(res), args.out or args.weights.with_name("eval.json"))
    if args.store_calibration:
        print(f"wrote {store_calibration(args.weights, res)}")


if __name__ == "__main__":
    main()
