"""Evaluate RASALoRE against an honest baseline on the HELD-OUT patient (torch + numpy + safetensors only).

Usage::

    python -m engines.rasalore.evaluate --weights resources/weights/rasalore/model.safetensors \\
        --data data_prepared/rasalore

Everything runs on whole 240×240×155 volumes through the app's own code (:func:`engines.rasalore.pipeline.segment`
then :func:`engines.rasalore.postprocess.clean_mask` with the parameters of ``postprocess.json``, chosen on the
validation patient by :mod:`engines.rasalore.calibrate`):

* **engine**: the mask the app shows (FLAIR volumes: the FLAIR parameters; T1c: the any-sequence ones);
* **stage 2 raw**: the network's mask > 0.5 inside the brain, nothing removed (what shipped before);
* **baseline**: the brain's intensities above their ``p``-th percentile, largest 6-connected component; ``p``
  chosen per sequence on the two TRAINING patients (their labels) to maximise the per-volume Dice;
* **stage 1** (DDPT pseudo-masks, when ``ddpt.safetensors`` lies beside the weights): Dice on the crops only.

Metrics per volume: Dice per volume, mean Dice per slice (slices with > 200 tumour px), false-positive volume
(mL), connected components, tumour-free slices marked; the slice score's AUROC and its calibration (saturation
shares and ECE before/after the validation-fitted Platt scaling). Engine vs baseline on the held-out patient with
paired bootstrap 95 % intervals over its SLICES (one held-out patient: the intervals show slice-to-slice
variation within that patient, not patient-to-patient variation). The validation patient's numbers are printed too,
marked "tuning": the post-processing was chosen on it. Ground truth is read here and by ``calibrate`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.common.calibration import calibration_report
from engines.common.evaluate import evaluate_parser, publish
from engines.common.metrics import dice, roc_auc
from engines.common.validation import Comparison, compare, comparison_table, mean_of
from engines.rasalore.calibrate import SliceCalibration, act_logit, load_calibration, slice_labels
from engines.rasalore.postprocess import PostParams, clean_mask, label_components
from engines.rasalore.preprocess import TUMOUR_PX, brain_mask, normalise_volume
from engines.weights import sha256_file

PAPER = "unverified (paper not reachable offline; its README reports no numbers)"
BASELINE_PERCENTILES = tuple(float(p) for p in range(80, 100))


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


def baseline_mask(vol: np.ndarray, percentile: float) -> np.ndarray:
    """The baseline: brain voxels above the ``percentile`` of the brain's intensities, largest component."""
    brain = brain_mask(vol)
    v = normalise_volume(vol, brain, gamma=1.0)
    return largest_component((v > np.percentile(v[brain], percentile)) & brain)


def fit_baseline(data: Path) -> dict[str, dict[str, float]]:
    """Per sequence, the percentile maximising the mean per-volume Dice on the TRAINING patients."""
    with np.load(data / "gt_train.npz") as f:
        gts = {k[3:]: f[k].astype(bool) for k in f.files if k.startswith("wt_")}
    scores: dict[str, dict[float, list[float]]] = {}
    with np.load(data / "volumes_train.npz") as f:
        for key in sorted(k for k in f.files if "__" in k):
            patient, modality = key.split("__")
            vol = f[key]
            brain = brain_mask(vol)
            v = normalise_volume(vol, brain, gamma=1.0)
            cuts = np.percentile(v[brain], BASELINE_PERCENTILES)
            for p, c in zip(BASELINE_PERCENTILES, cuts, strict=True):
                scores.setdefault(modality, {}).setdefault(p, []).append(
                    dice(largest_component((v > c) & brain), gts[patient]))
    out = {}
    for mod, by_p in scores.items():
        best = max(by_p, key=lambda p: np.mean(by_p[p]))
        out[mod] = {"percentile": best, "train_dice": round(float(np.mean(by_p[best])), 4)}
    return out


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


def _comparisons(stats: dict[str, dict[str, SliceStats]], base_name: str) -> list[Comparison]:
    rows = []
    for mod in sorted(stats):
        e, b = stats[mod]["engine"], stats[mod]["baseline"]
        n = len(e.inter)
        rows.append(compare(f"Dice per volume ({mod})", base_name, e.volume_dice, b.volume_dice, n))  # cases: slices
        ed, bd = e.slice_dice(), b.slice_dice()
        keep = np.isfinite(ed)
        rows.append(compare(f"Dice per slice ({mod})", base_name, mean_of(ed[keep]), mean_of(bd[keep]),
                            int(keep.sum())))
    return rows


def evaluate(weights: Path, data: Path, threads: int = 1, ddpt: Path | None = None) -> dict[str, object]:
    """Engine, raw stage 2 and baseline on the held-out (test) and validation (tuning) patients; see the docstring."""
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
    base = fit_baseline(data)
    base_name = "intensity percentile (fit on train) + largest component"
    res: dict[str, object] = {"engine": "rasalore", "weights": str(weights), "weights_sha256": sha256_file(weights),
                              "postprocess": calib, "baseline": {"what": base_name, "per_sequence": base},
                              "paper": PAPER}
    for side in ("test", "val"):
        with np.load(data / f"gt_{side}.npz") as f:
            gts = {k[3:]: f[k].astype(bool) for k in f.files if k.startswith("wt_")}
        per: dict[str, dict[str, object]] = {}
        stats: dict[str, dict[str, SliceStats]] = {}
        cal_z, cal_y = [], []
        with np.load(data / f"volumes_{side}.npz") as f:
            voxel_ml = float(np.prod(f["spacing"])) / 1000.0
            for key in sorted(k for k in f.files if "__" in k):
                patient, mod = key.split("__")
                wt = gts[patient]
                seg = segment(model, f[key])
                params = post_flair if mod == "flair" else post
                masks = {"engine": clean_mask(seg.prob, seg.brain, params, voxel_ml, seg.vol01),
                         "stage2_raw": (seg.prob > 0.5) & seg.brain,
                         "baseline": baseline_mask(f[key], base[mod]["percentile"])}
                y = slice_labels(wt)
                lab = np.isfinite(y) & np.isfinite(seg.slice_logit)
                per[mod] = {name: volume_metrics(m, wt, voxel_ml) for name, m in masks.items()}
                per[mod]["engine"]["slice_auroc"] = round(roc_auc(y[lab], seg.slice_logit[lab]), 4)
                per[mod]["baseline"]["slice_auroc"] = round(roc_auc(y[lab], masks["baseline"].sum((1, 2))[lab]), 4)
                per[mod]["patient"] = patient
                hm = map_cal.prob(act_logit(seg.act)) * seg.brain  # the heatmap the app shows
                per[mod]["map"] = {"mass_in_tumour": round(float(hm[wt].sum() / max(hm.sum(), 1e-9)), 4),
                                   "constant_map_mass_in_tumour": round(float(wt[seg.brain].mean()), 4),
                                   "dice_at_threshold": round(dice(hm > map_thr, wt), 4), "threshold": map_thr,
                                   "outside_brain_max": float(hm[~seg.brain].max(initial=0.0))}
                stats[mod] = {n: SliceStats.of(masks[n], wt) for n in ("engine", "baseline")}
                cal_z.append(seg.slice_logit[lab])
                cal_y.append(y[lab])
        z, y = np.concatenate(cal_z), np.concatenate(cal_y)
        calibration = {"before": calibration_report(1 / (1 + np.exp(-z)), y), "after": calibration_report(cal.prob(z), y),
                       "slices": int(len(y))}
        comps = _comparisons(stats, base_name)
        res[side] = {"per_sequence": per, "calibration": calibration,
                     "comparisons": [c.to_dict() for c in comps], "table": comparison_table(comps)}
    test = res["test"]
    res["validation"] = test["comparisons"][0] if test["comparisons"] else None  # type: ignore[index]
    res["validation_note"] = ("verdict on the held-out test patient (brats_2013_pat0006_1; not used for any choice), "
                              "FLAIR Dice per volume, bootstrap over its slices; 1 patient only")
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


def format_table(res: dict) -> str:
    """The printed report: per-volume metrics, calibration, the engine-vs-baseline table with intervals."""
    lines = []
    for side, title in (("test", "HELD-OUT test patient (never used for a choice)"),
                        ("val", "validation patient (TUNING: post-processing and calibration chosen on it)")):
        r = res[side]
        lines.append(f"== {title}")
        lines.append(f"{'sequence':8s} {'method':11s} {'Dice/vol':>8s} {'Dice/sl':>7s} {'FP mL':>6s} {'pred mL':>7s} "
                     f"{'GT mL':>6s} {'comps':>6s} {'tf-slices':>9s} {'AUROC':>6s}")
        for mod, row in r["per_sequence"].items():
            mp = row["map"]
            lines.append(f"{mod:8s} heatmap: mass inside the tumour {mp['mass_in_tumour']:.3f} (a constant brain map: "
                         f"{mp['constant_map_mass_in_tumour']:.3f}), Dice of map > {mp['threshold']:g} "
                         f"{mp['dice_at_threshold']:.3f}, max outside the brain {mp['outside_brain_max']:g}")
            for name in ("engine", "stage2_raw", "baseline"):
                v = row[name]
                au = f"{v['slice_auroc']:6.3f}" if "slice_auroc" in v else f"{'':6s}"
                lines.append(f"{mod:8s} {name:11s} {v['dice_volume']:8.3f} {v['dice_per_slice']:7.3f} {v['fp_ml']:6.1f} "
                             f"{v['pred_ml']:7.1f} {v['gt_ml']:6.1f} {v['components']:6d} "
                             f"{v['tumour_free_slices_marked']:4d}/{v['tumour_free_slices']:<4d} {au}")
        c = r["calibration"]
        lines.append(f"slice score calibration ({c['slices']} labelled slices): before share<0.02 "
                     f"{c['before']['below_0.02']:.2f}, >0.98 {c['before']['above_0.98']:.2f}, ECE {c['before']['ece']:.3f}"
                     f" -> after {c['after']['below_0.02']:.2f}, {c['after']['above_0.98']:.2f}, ECE {c['after']['ece']:.3f}")
        lines.append(r["table"])
        lines.append("")
    if "stage1_ddpt_test" in res:
        s1 = res["stage1_ddpt_test"]
        lines.append("stage 1 (DDPT pseudo-masks, held-out): Dice per volume " +
                     ", ".join(f"{m} {v['dice_volume']:.3f}" for m, v in s1.items()))
    b = res["baseline"]["per_sequence"]
    lines.append("baseline percentiles (chosen on the 2 training patients): " +
                 ", ".join(f"{m} p{v['percentile']:g} (train Dice {v['train_dice']:.3f})" for m, v in b.items()))
    lines.append(f"verdict: {res['validation']['summary'] if res['validation'] else 'none'}")
    lines.append(f"({res['validation_note']}; the 'validation cases' of the table are that patient's slices)")
    lines.append("tf-slices: tumour-free slices with any voxel marked / tumour-free slices; comps: 6-connected "
                 "components; FP mL: predicted voxels outside the label")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("rasalore", "Evaluate rasalore against the intensity-threshold baseline.")
    ap.add_argument("--ddpt", type=Path, default=None, help="stage-1 weights (default: ddpt.safetensors beside --weights)")
    args = ap.parse_args(argv)
    res = evaluate(args.weights, args.data, args.threads, args.ddpt)
    publish(json.loads(json.dumps(res, default=float)), "engines.rasalore.evaluate", argv, format_table(res),
            args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
