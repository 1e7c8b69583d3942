"""Evaluate RASALoRE against an honest baseline on the HELD-OUT patient (torch + numpy + safetensors only).

Usage::

    python -m engines.rasalore.evaluate --weights resources/weights/rasalore/model.safetensors \\
        --data data_prepared/rasalore

Everything runs on whole 240×240×155 volumes through the app's own code (:func:`engines.rasalore.pipeline.segment`
then :func:`engines.rasalore.postprocess.clean_mask` with the parameters of ``postprocess.json``, chosen on the
validation patient by :mod:`engines.rasalore.calibrate`):

* **engine**: the mask the app shows (FLAIR volumes: the FLAIR parameters; T1c: the any-sequence ones);
* **stage 2 raw**: the network's mask > 0.5 inside the brain, nothing removed (what shipped before);
* **baseline** (the strongest intensity baseline, the one the verdict is against): the brain's intensities above
  a cut that follows the volume's own statistics, largest 6-connected component. Four rules
  (:data:`engines.common.baseline.THRESHOLD_RULES`: brain percentile ``p``; mean + k·std; median + k·MAD;
  two-level Otsu), each rule's parameter AND the rule itself chosen per sequence on the two TRAINING patients
  (their labels) to maximise the mean per-volume Dice (:func:`fit_baseline` reads ``*_train.npz`` only). As a
  check of symmetry with the engine (trained on the training patients, post-processing chosen on the validation
  patient) the same choice is also made on training + validation patients and printed; it never reads the test
  patient. Hole filling was tried on the training patients and changed no Dice by more than 0.001, so none;
* **baseline_pct**: the earlier baseline, the brain percentile rule alone (``p`` chosen on the training patients);
* **stage 1** (DDPT pseudo-masks, when ``ddpt.safetensors`` lies beside the weights): Dice on the crops only.

Metrics per volume: Dice per volume, mean Dice per slice (slices with > 200 tumour px), false-positive volume
(mL), connected components, tumour-free slices marked; the slice score's AUROC and its calibration (saturation
shares and ECE before/after the validation-fitted Platt scaling). Engine vs both baselines on the held-out patient with
paired bootstrap 95 % intervals over its SLICES (one held-out patient: the intervals show slice-to-slice
variation within that patient, not patient-to-patient variation). The validation patient's numbers are printed too,
marked "tuning": the post-processing was chosen on it. Ground truth is read here and by ``calibrate`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.common.baseline import (
    THRESHOLD_RULE_TEXT,
    THRESHOLD_RULES,
    choose_threshold,
    threshold_cut,
    threshold_cuts,
)
from engines.common.calibration import calibration_report
from engines.common.evaluate import evaluate_parser, publish
from engines.common.metrics import dice, roc_auc
from engines.common.validation import Comparison, compare, comparison_table, mean_of
from engines.rasalore.calibrate import SliceCalibration, act_logit, load_calibration, slice_labels
from engines.rasalore.postprocess import PostParams, clean_mask, label_components
from engines.rasalore.preprocess import TUMOUR_PX, brain_mask, normalise_volume
from engines.weights import sha256_file

PAPER = "unverified (paper not reachable offline; its README reports no numbers)"
BASELINE_PERCENTILES = THRESHOLD_RULES["percentile"]
#: Score tables of one side: ``(sequence, patient, {(rule, param): Dice per volume})`` per volume.
ScoreTables = list[tuple[str, str, dict[tuple[str, float], float]]]


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops ``[N, S, S]`` → (mask probability ``[N, s, s]``, slice score = max point activation ``[N]``)
    (used by training's checkpoint selection on the validation crops)."""
    probs, scores = [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch].astype(np.float32))[:, None]
        logits, act, _ = model(x)
        probs.append(torch.sigmoid(logits)[:, 0].numpy())
        scores.append(act.flatten(1).max(1).values.numpy())
    return np.concatenate(probs), np.concatenate(scores)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean volume (empty stays empty)."""
    labels, sizes = label_components(mask)
    return labels == (int(np.argmax(sizes)) + 1) if sizes.size else np.asarray(mask, bool)


def _baseline_input(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(brain-normalised volume, brain mask): what every intensity baseline thresholds."""
    brain = brain_mask(vol)
    return normalise_volume(vol, brain, gamma=1.0), brain


def baseline_mask(vol: np.ndarray, rule: str | float, param: float | None = None) -> np.ndarray:
    """A baseline mask: brain voxels above the cut of ``rule`` with ``param`` on the brain's intensities, largest
    component. ``baseline_mask(vol, 94.0)`` (a number, no ``param``) is the percentile rule at ``p = 94``."""
    if param is None:
        rule, param = "percentile", float(rule)
    v, brain = _baseline_input(vol)
    return largest_component((v > threshold_cut(v[brain], str(rule), param)) & brain)


def rule_text(rule: str, param: float) -> str:
    """``median + 1.5·MAD`` (how a fitted rule reads)."""
    return THRESHOLD_RULE_TEXT[rule].format(param=param)


def score_volume(vol: np.ndarray, wt: np.ndarray) -> dict[tuple[str, float], float]:
    """Dice per volume of every rule and parameter of :data:`THRESHOLD_RULES` (+ largest component) on one volume."""
    v, brain = _baseline_input(vol)
    cuts = threshold_cuts(v[brain])
    done: dict[float, float] = {}  # equal cuts give equal masks
    for cut in cuts.values():
        if cut not in done:
            done[cut] = dice(largest_component((v > cut) & brain), wt)
    return {k: done[c] for k, c in cuts.items()}


def score_tables(volumes: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray]) -> ScoreTables:
    """:func:`score_volume` of every ``<patient>__<sequence>`` volume against ``gts[<patient>]``."""
    return [(key.split("__")[1], key.split("__")[0], score_volume(volumes[key], gts[key.split("__")[0]]))
            for key in sorted(k for k in volumes if "__" in k)]


def fit_from_tables(tables: ScoreTables) -> dict[str, dict]:
    """Per sequence: each rule's best parameter, the strongest rule and the percentile rule (mean Dice per volume
    over the patients of ``tables``)."""
    out: dict[str, dict] = {}
    for mod in sorted({t[0] for t in tables}):
        rows = [t for t in tables if t[0] == mod]
        fit = choose_threshold([t[2] for t in rows])
        rules = {r: {"param": f["param"], "train_dice": f["score"], "per_patient": f["per_case"]}
                 for r, f in fit["rules"].items()}
        best = fit["best"]
        out[mod] = {"percentile": rules["percentile"]["param"], "train_dice": rules["percentile"]["train_dice"],
                    "strongest": {"rule": best, "param": rules[best]["param"], "train_dice": rules[best]["train_dice"],
                                  "text": rule_text(best, rules[best]["param"])},
                    "rules": rules, "patients": [t[1] for t in rows]}
    return out


def fit_baseline_volumes(volumes: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Fit every baseline rule on the TRAINING volumes and labels given (see :func:`fit_from_tables`)."""
    return fit_from_tables(score_tables(volumes, gts))


def _read_side(data: Path, side: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(data / f"gt_{side}.npz") as f:
        gts = {k[3:]: f[k].astype(bool) for k in f.files if k.startswith("wt_")}
    with np.load(data / f"volumes_{side}.npz") as f:
        vols = {k: f[k] for k in f.files if "__" in k}
    return vols, gts


def fit_baseline(data: Path) -> dict[str, dict]:
    """Per sequence, every rule's parameter and the strongest rule, chosen on the TRAINING patients only: reads
    ``volumes_train.npz`` and ``gt_train.npz`` and nothing else."""
    return fit_baseline_volumes(*_read_side(data, "train"))


@dataclass
class SliceStats:
    """Per axial slice of one method on one volume: |pred ∩ gt|, |pred|, |gt| (voxels)."""

    inter: np.ndarray
    pred: np.ndarray
    gt: np.ndarray

    @classmethod
    def of(cls, pred: np.ndarray, wt: np.ndarray) -> SliceStats:
        return cls((pred & wt).sum((1, 2)).astype(np.float64), pred.sum((1, 2)).astype(np.float64),
                   wt.sum((1, 2)).astype(np.float64))

    def volume_dice(self, idx: np.ndarray) -> float:
        """Dice of the slices ``idx`` pooled (a slice drawn twice counts twice)."""
        s = self.pred[idx].sum() + self.gt[idx].sum()
        return 1.0 if s == 0 else float(2 * self.inter[idx].sum() / s)

    def slice_dice(self) -> np.ndarray:
        """Dice of every slice; NaN on slices with ≤ 200 tumour px (not scored per slice)."""
        s = self.pred + self.gt
        d = np.where(s > 0, 2 * self.inter / np.maximum(s, 1), 1.0)
        return np.where(self.gt > TUMOUR_PX, d, np.nan)


def volume_metrics(pred: np.ndarray, wt: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Dice per volume / per slice, false-positive mL, components and tumour-free slices marked."""
    st = SliceStats.of(pred, wt)
    _, sizes = label_components(pred)
    return {"dice_volume": round(dice(pred, wt), 4), "dice_per_slice": round(float(np.nanmean(st.slice_dice())), 4),
            "fp_ml": round(float((pred & ~wt).sum()) * voxel_ml, 2), "pred_ml": round(float(pred.sum()) * voxel_ml, 2),
            "gt_ml": round(float(wt.sum()) * voxel_ml, 2), "components": int(sizes.size),
            "tumour_free_slices_marked": int(((st.gt == 0) & (st.pred > 0)).sum()),
            "tumour_free_slices": int((st.gt == 0).sum())}


BASELINES = ("baseline", "baseline_pct")  # the strongest baseline (the verdict's), the percentile baseline
VERDICT_METRIC = "Dice per volume (flair)"


def baseline_names(base: dict[str, dict]) -> dict[str, dict[str, str]]:
    """``{sequence: {"baseline": ..., "baseline_pct": ...}}``: what each baseline row is, in words."""
    out = {}
    for mod, b in base.items():
        s = b["strongest"]
        out[mod] = {"baseline": f"{s['text']} of the brain's {mod.upper()} (rule and parameter fit on the 2 training "
                                "patients) + largest component",
                    "baseline_pct": f"{mod.upper()} brain percentile p{b['percentile']:g} (fit on the 2 training "
                                    "patients) + largest component"}
    return out


def _comparisons(stats: dict[str, dict[str, SliceStats]], names: dict[str, dict[str, str]]) -> list[Comparison]:
    """Per sequence and per baseline: Dice per volume and mean Dice per slice, paired bootstrap over slices."""
    rows = []
    for base in BASELINES:
        for mod in sorted(stats):
            e, b = stats[mod]["engine"], stats[mod][base]
            n = len(e.inter)
            name = names[mod][base]
            rows.append(compare(f"Dice per volume ({mod})", name, e.volume_dice, b.volume_dice, n))  # cases: slices
            ed, bd = e.slice_dice(), b.slice_dice()
            keep = np.isfinite(ed)
            rows.append(compare(f"Dice per slice ({mod})", name, mean_of(ed[keep]), mean_of(bd[keep]),
                                int(keep.sum())))
    return rows


def _variants(tables: ScoreTables, fits: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Dice per volume of every rule at the parameter each fit chose, per sequence, on the volumes of ``tables``."""
    out: dict[str, dict[str, dict]] = {}
    for mod, patient, table in tables:
        out[mod] = {"patient": patient}
        for fit_name, fit in fits.items():
            out[mod][fit_name] = {r: {"param": f["param"], "text": rule_text(r, f["param"]),
                                      "dice_volume": round(float(table[(r, f["param"])]), 4)}
                                  for r, f in fit[mod]["rules"].items()}
            out[mod][fit_name]["strongest"] = fit[mod]["strongest"]["rule"]
    return out


def evaluate(weights: Path, data: Path, threads: int = 1, ddpt: Path | None = None) -> dict[str, object]:
    """Engine, raw stage 2 and baselines on the held-out (test) and validation (tuning) patients; see the docstring."""
    from engines.rasalore.model import for_inference
    from engines.rasalore.pipeline import segment
    from engines.rasalore.weights_io import load_stage2

    torch.set_num_threads(threads)
    model = for_inference(load_stage2(weights))
    calib = load_calibration(weights)
    post = PostParams.from_dict(calib["post"]) if calib else PostParams()
    post_flair = PostParams.from_dict(calib["post_flair"]) if calib else PostParams()
    cal = SliceCalibration(**{k: calib["slice_calibration"][k] for k in ("a", "b")}) if calib else SliceCalibration()
    mc = (calib or {}).get("map_calibration") or {"a": 1.0, "b": 0.0, "threshold": 0.5}
    map_cal, map_thr = SliceCalibration(mc["a"], mc["b"]), float(mc["threshold"])
    train_tables = score_tables(*_read_side(data, "train"))
    base = fit_from_tables(train_tables)  # what every baseline row uses: the training patients only
    val_tables = score_tables(*_read_side(data, "val"))
    base_tv = fit_from_tables(train_tables + val_tables)  # the symmetry check (the engine's post-processing saw val)
    names = baseline_names(base)
    res: dict[str, object] = {"engine": "rasalore", "weights": str(weights), "weights_sha256": sha256_file(weights),
                              "postprocess": calib,
                              "baseline": {"what": names["flair"]["baseline"], "per_sequence": base, "names": names,
                                           "fit_on": "training patients only (" + ", ".join(
                                               base["flair"]["patients"]) + ")",
                                           "check_fit_on_train_and_val": base_tv,
                                           "hole_fill": "tried on the training patients: no Dice changed by more "
                                                        "than 0.001; not used"},
                              "paper": PAPER}
    for side in ("test", "val"):
        vols, gts = _read_side(data, side)
        tables = val_tables if side == "val" else score_tables(vols, gts)
        per: dict[str, dict[str, object]] = {}
        stats: dict[str, dict[str, SliceStats]] = {}
        cal_z, cal_y = [], []
        with np.load(data / f"volumes_{side}.npz") as f:
            voxel_ml = float(np.prod(f["spacing"])) / 1000.0
        for key in sorted(vols):
            patient, mod = key.split("__")
            wt = gts[patient]
            seg = segment(model, vols[key])
            params = post_flair if mod == "flair" else post
            st = base[mod]["strongest"]
            masks = {"engine": clean_mask(seg.prob, seg.brain, params, voxel_ml, seg.vol01),
                     "stage2_raw": (seg.prob > 0.5) & seg.brain,
                     "baseline": baseline_mask(vols[key], st["rule"], st["param"]),
                     "baseline_pct": baseline_mask(vols[key], "percentile", base[mod]["percentile"])}
            y = slice_labels(wt)
            lab = np.isfinite(y) & np.isfinite(seg.slice_logit)
            per[mod] = {name: volume_metrics(m, wt, voxel_ml) for name, m in masks.items()}
            per[mod]["engine"]["slice_auroc"] = round(roc_auc(y[lab], seg.slice_logit[lab]), 4)
            for name in BASELINES:
                per[mod][name]["slice_auroc"] = round(roc_auc(y[lab], masks[name].sum((1, 2))[lab]), 4)
            per[mod]["patient"] = patient
            hm = map_cal.prob(act_logit(seg.act)) * seg.brain  # the heatmap the app shows
            per[mod]["map"] = {"mass_in_tumour": round(float(hm[wt].sum() / max(hm.sum(), 1e-9)), 4),
                               "constant_map_mass_in_tumour": round(float(wt[seg.brain].mean()), 4),
                               "dice_at_threshold": round(dice(hm > map_thr, wt), 4), "threshold": map_thr,
                               "outside_brain_max": float(hm[~seg.brain].max(initial=0.0))}
            stats[mod] = {n: SliceStats.of(masks[n], wt) for n in ("engine", *BASELINES)}
            cal_z.append(seg.slice_logit[lab])
            cal_y.append(y[lab])
        z, y = np.concatenate(cal_z), np.concatenate(cal_y)
        calibration = {"before": calibration_report(1 / (1 + np.exp(-z)), y), "after": calibration_report(cal.prob(z), y),
                       "slices": int(len(y))}
        comps = _comparisons(stats, names)
        res[side] = {"per_sequence": per, "calibration": calibration,
                     "baseline_variants": _variants(tables, {"fit_on_train": base, "fit_on_train_and_val": base_tv}),
                     "comparisons": [c.to_dict() for c in comps], "table": comparison_table(comps)}
    test = res["test"]
    flair_best = names["flair"]["baseline"]
    res["validation"] = next((c for c in test["comparisons"]  # type: ignore[index]
                              if c["metric"] == VERDICT_METRIC and c["baseline"] == flair_best), None)
    res["validation_note"] = ("verdict on the held-out test patient (brats_2013_pat0006_1; not used for any choice), "
                              "FLAIR Dice per volume against the strongest intensity baseline (rule and parameter "
                              "chosen on the 2 training patients), bootstrap over its slices; 1 patient only")
    if ddpt is None:
        ddpt = weights.with_name("ddpt.safetensors")
    if ddpt.exists():
        res["stage1_ddpt_test"] = stage1_scores(ddpt, data)
    return res


def stage1_scores(ddpt: Path, data: Path) -> dict[str, dict[str, float]]:
    """Stage-1 (DDPT) pseudo-masks on the held-out crops (kept where its own p(tumour) > 0.5): Dice per volume."""
    from engines.rasalore.preprocess import paste_back
    from engines.rasalore.train_ddpt import infer
    from engines.rasalore.weights_io import load_stage1

    with np.load(data / "test.npz") as f:
        d = {k: f[k] for k in f.files}
    with np.load(data / "gt_test.npz") as f:
        gt = {k: f[k] for k in f.files}
    p1, _, pm1 = infer(load_stage1(ddpt), d["images"], d["brain"], torch.device("cpu"))
    masks = (pm1 * (p1 > 0.5)[:, None, None]).astype(np.float32)
    out = {}
    for mod in sorted(set(d["modality"].tolist())):
        sel = d["modality"] == mod
        wt = gt[f"wt_{d['patient'][sel][0]}"].astype(bool)
        boxes = np.full((wt.shape[0], 4), -1, np.int32)
        boxes[d["slice_index"][sel]] = d["boxes"][sel]
        order = np.argsort(d["slice_index"][sel])
        pred = paste_back(masks[sel][order], boxes, wt.shape) > 0.5
        out[mod] = {"dice_volume": round(dice(pred, wt), 4)}
    return out


def _variant_lines(res: dict) -> list[str]:
    """Every baseline rule, fitted on train (and, as a check, on train + validation), on validation and test."""
    b = res["baseline"]
    lines = ["== intensity baselines, every rule (Dice per volume; + largest component; none saw the test patient)"]
    for fit_name, fit, what in (("fit_on_train", b["per_sequence"], "fit on the 2 training patients (used)"),
                                ("fit_on_train_and_val", b["check_fit_on_train_and_val"],
                                 "check: fit on training + validation patients")):
        lines.append(f"-- {what}")
        lines.append(f"{'sequence':8s} {'rule':24s} {'fit Dice':>8s} {'val':>6s} {'test':>6s}")
        for mod, f in fit.items():
            for rule, r in f["rules"].items():
                mark = " <- strongest" if rule == f["strongest"]["rule"] else ""
                v = res["val"]["baseline_variants"][mod][fit_name][rule]["dice_volume"]
                t = res["test"]["baseline_variants"][mod][fit_name][rule]["dice_volume"]
                lines.append(f"{mod:8s} {rule_text(rule, r['param']):24s} {r['train_dice']:8.3f} {v:6.3f} {t:6.3f}{mark}")
    lines.append("fit Dice: mean Dice per volume over the patients the rule was fit on; val: the validation patient "
                 "(part of the fit in the check only); test: the held-out patient (never part of a fit)")
    return lines


def format_table(res: dict) -> str:
    """The printed report: per-volume metrics, calibration, the engine-vs-baselines table with intervals."""
    lines = []
    methods = ("engine", "stage2_raw", *BASELINES)
    for side, title in (("test", "HELD-OUT test patient (never used for a choice)"),
                        ("val", "validation patient (TUNING: post-processing and calibration chosen on it)")):
        r = res[side]
        lines.append(f"== {title}")
        lines.append(f"{'sequence':8s} {'method':12s} {'Dice/vol':>8s} {'Dice/sl':>7s} {'FP mL':>6s} {'pred mL':>7s} "
                     f"{'GT mL':>6s} {'comps':>6s} {'tf-slices':>9s} {'AUROC':>6s}")
        for mod, row in r["per_sequence"].items():
            mp = row["map"]
            lines.append(f"{mod:8s} heatmap: mass inside the tumour {mp['mass_in_tumour']:.3f} (a constant brain map: "
                         f"{mp['constant_map_mass_in_tumour']:.3f}), Dice of map > {mp['threshold']:g} "
                         f"{mp['dice_at_threshold']:.3f}, max outside the brain {mp['outside_brain_max']:g}")
            for name in methods:
                v = row[name]
                au = f"{v['slice_auroc']:6.3f}" if "slice_auroc" in v else f"{'':6s}"
                lines.append(f"{mod:8s} {name:12s} {v['dice_volume']:8.3f} {v['dice_per_slice']:7.3f} {v['fp_ml']:6.1f} "
                             f"{v['pred_ml']:7.1f} {v['gt_ml']:6.1f} {v['components']:6d} "
                             f"{v['tumour_free_slices_marked']:4d}/{v['tumour_free_slices']:<4d} {au}")
        c = r["calibration"]
        lines.append(f"slice score calibration ({c['slices']} labelled slices): before share<0.02 "
                     f"{c['before']['below_0.02']:.2f}, >0.98 {c['before']['above_0.98']:.2f}, ECE {c['before']['ece']:.3f}"
                     f" -> after {c['after']['below_0.02']:.2f}, {c['after']['above_0.98']:.2f}, ECE {c['after']['ece']:.3f}")
        lines.append(r["table"])
        lines.append("")
    lines += _variant_lines(res)
    lines.append("")
    if "stage1_ddpt_test" in res:
        s1 = res["stage1_ddpt_test"]
        lines.append("stage 1 (DDPT pseudo-masks, held-out): Dice per volume " +
                     ", ".join(f"{m} {v['dice_volume']:.3f}" for m, v in s1.items()))
    b = res["baseline"]["per_sequence"]
    lines.append("baselines (chosen on the 2 training patients): " +
                 "; ".join(f"{m} strongest {v['strongest']['text']} (train Dice {v['strongest']['train_dice']:.3f}), "
                           f"percentile p{v['percentile']:g} (train Dice {v['train_dice']:.3f})" for m, v in b.items()))
    lines.append(f"verdict: {res['validation']['summary'] if res['validation'] else 'none'}")
    lines.append(f"({res['validation_note']}; the 'validation cases' of the table are that patient's slices)")
    lines.append("baseline: the strongest intensity rule (the verdict's); baseline_pct: the brain percentile rule; "
                 "tf-slices: tumour-free slices with any voxel marked / tumour-free slices; comps: 6-connected "
                 "components; FP mL: predicted voxels outside the label")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("rasalore", "Evaluate rasalore against the intensity-threshold baselines.")
    ap.add_argument("--ddpt", type=Path, default=None, help="stage-1 weights (default: ddpt.safetensors beside --weights)")
    args = ap.parse_args(argv)
    res = evaluate(args.weights, args.data, args.threads, args.ddpt)
    publish(json.loads(json.dumps(res, default=float)), "engines.rasalore.evaluate", argv, format_table(res),
            args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
