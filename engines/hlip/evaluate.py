"""Zero-shot evaluation of HLIP on the held-out split (prints a table, writes JSON).

    python -m engines.hlip.evaluate --weights resources/weights/hlip/model.safetensors --data data_prepared/hlip

Protocols (the paper's, on what ``../shared/data`` has):

* **Brain MRI, Pub-Brain-5 prompts** — "This MRI study shows: {c}." for the five classes (No significant
  abnormalities, Acute stroke, Glioma, Meningioma, Metastasis); softmax of exp(logit_scale)·cosine; prediction =
  argmax. Truth: Glioma when the study's mask has tumour voxels, else No significant abnormalities (the only two
  classes our data has) → balanced accuracy over those two classes, AUC of P(Glioma).
* **Brain MRI 2-way** — ("glioma", "no glioma"): AUC of P(glioma), balanced accuracy at the argmax (fixed 0.5).
* **Head CT, 2 classes** — ("no significant abnormalities", "intracranial hemorrhage"), and **2-way** —
  ("intracranial hemorrhage", "no intracranial hemorrhage"): AUC and balanced accuracy (argmax).

Engine against honest baselines (issue 18), on the same validation split (split.json: head CT by pseudo-patient
group, MRI by patient; fixed seed), paired bootstrap 95 % intervals (:func:`engines.common.validation.compare`):

* **head-CT haemorrhage AUC** (the card's and the app's verdict) — the engine's 2-way logit
  ``exp(logit_scale)·(cos(img, ICH) − cos(img, no ICH))`` vs a logistic regression on the intensity histogram
  (32 bins) + 32×32 pixels of the same prepared slices, fitted on the TRAINING groups only; resampled by group;
* **MRI glioma AUC** — the same on the held-out patient's 9 studies (one patient: the interval over studies
  understates the uncertainty);
* **heatmap pointing game / mass in tumour** — the shipped map (per-token probability, brain tokens only) on the
  held-out tumour studies vs the brain-mask-centre token / a constant map inside the brain.

Calibration: a temperature per prompt family fitted on the validation logits (NLL), with the share of scores
< 0.02 / > 0.98 and the ECE before, after (in-sample) and after with leave-one-group-out temperatures (honest).
``main`` writes ``calibration.json`` (temperatures + heatmap gate, for this weights file's SHA-256) and
``prompts.safetensors`` (the frozen encoder's vectors of the fixed prompts) beside the weights; the engine reads
both.

The paper's figures are quoted second-hand and marked unverified (no copy of the PDF offline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engines.common.baseline import LogisticBaseline, histogram_features, pixel_features
from engines.common.calibration import CALIBRATION_FILE, calibration_report, fit_temperature
from engines.common.evaluate import evaluate_parser, publish
from engines.common.validation import CaseMetric, Comparison, compare, comparison_table, mean_of
from engines.hlip import reports
from engines.hlip.metrics import balanced_accuracy, roc_auc, zero_shot_probs
from engines.hlip.reports import REFERENCE_CLASS
from engines.hlip.scoring import (
    PROMPTS_FILE,
    Calibration,
    save_prompt_vectors,
    sigmoid,
    token_probability,
)
from engines.hlip.train import StudyData
from engines.weights import sha256_file

REPO = Path(__file__).resolve().parents[2]
PAPER = {
    "note": "UNVERIFIED: HLIP's own figures as quoted in a third-party summary (ItemizedCLIP comparison table) "
            "and the HLIP README of 2026-04, not checked against the HLIP PDF offline. Paper data: BrainMRI220K / "
            "HeadCT240K pre-training, Pub-Brain-5 (~18K studies), RSNA and CQ500 test sets.",
    "pub_brain_5_mean_balanced_acc": 0.765,
    "rsna_macro_auc": 0.857,
    "cq500_macro_auc": 0.831,
    "readme_2026_04_mr_rate_model_pub_brain_5_anomaly_detection_bacc": 0.891,
}


def embed_split(model: torch.nn.Module, data: StudyData, kind: str, dense: list | None = None) -> np.ndarray:
    """Normalised image embeddings ``[S, E]`` of every study of ``kind`` (no augmentation).

    When ``dense`` is a list, each study's normalised patch features ``[N, D', H', W', E]`` are appended to it.
    """
    imgs, meta = data.sets[kind]
    out = []
    pd = model.config.patch_size[0]
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for i in range(len(meta)):
            sub = StudyData.__new__(StudyData)
            sub.sets = {kind: (imgs[i:i + 1], meta[i:i + 1])}
            x, _ = StudyData.batch(sub, kind, 1, rng, pd, augment=False)
            img, d = model.encode_image(x)
            out.append(img[0].numpy())
            if dense is not None:
                dense.append(d[0].numpy())
    return np.stack(out) if out else np.zeros((0, model.config.embed_dim), np.float32)


def prompt_embeddings(model: torch.nn.Module, data: StudyData, prompts: list[str]) -> np.ndarray:
    missing = [p for p in prompts if p not in data.text_index]
    if missing:
        from engines.common.text import encode

        vecs = torch.from_numpy(encode(prompts)).float()
    else:
        vecs = data.emb(prompts)
    with torch.inference_mode():
        return model.encode_text(vecs).numpy()


def _task(probs: np.ndarray, truth_idx: np.ndarray, pos: int, classes: list[str]) -> dict:
    pred = probs.argmax(1)
    y = truth_idx == pos
    return {"classes": classes, "n": int(len(truth_idx)), "n_pos": int(y.sum()), "n_neg": int((~y).sum()),
            "balanced_accuracy": round(balanced_accuracy(truth_idx, pred), 4),
            "auc": None if math.isnan(a := roc_auc(y.astype(int), probs[:, pos])) else round(a, 4),
            "predicted_counts": {c: int((pred == k).sum()) for k, c in enumerate(classes)}}


def ct_prompts(model: torch.nn.Module, data: StudyData) -> np.ndarray:
    """Embeddings ``[2, E]`` of the CT 2-way prompts (haemorrhage, no haemorrhage)."""
    return prompt_embeddings(model, data, [reports.prompt(c, "CT") for c in reports.BINARY_TASKS["CT"]])


def evaluate(weights: Path, data_dir: Path, n_resamples: int = 1000) -> dict:
    """Every number of the card: the paper's zero-shot protocols, engine vs baselines with paired bootstrap
    intervals, the temperatures fitted on validation with calibration before/after, and the heatmap's
    localisation against its baseline. Also returns the :class:`~engines.hlip.scoring.Calibration` to store."""
    from engines.hlip.weights_io import load_model

    torch.set_num_threads(1)
    model = load_model(weights)
    data = StudyData(data_dir, "test")
    train = StudyData(data_dir, "train")
    scale = float(model.logit_scale.detach().clamp(max=math.log(100)).exp())
    sha = sha256_file(weights)
    out: dict = {"engine": "hlip", "weights": str(weights.relative_to(REPO) if weights.is_relative_to(REPO) else weights),
                 "weights_sha256": sha, "config": model.config.to_dict(), "split": "held-out (test)",
                 "logit_scale_exp": round(scale, 3), "tasks": {}}
    # brain MRI
    mri_dense: list[np.ndarray] = []
    mri_img = embed_split(model, data, "mri", mri_dense)
    mri_meta = data.sets["mri"][1]
    tum = np.array([m["tumour"] for m in mri_meta])
    c5 = list(reports.PUB_BRAIN_5)
    p5 = zero_shot_probs(mri_img, prompt_embeddings(model, data, [reports.prompt(c, "MR") for c in c5]), scale)
    truth5 = np.where(tum, c5.index("Glioma"), c5.index("No significant abnormalities"))
    out["tasks"]["mri_pub_brain_5_prompts"] = _task(p5, truth5, c5.index("Glioma"), c5)
    cb = list(reports.BINARY_TASKS["MR"])
    mr_pair = prompt_embeddings(model, data, [reports.prompt(c, "MR") for c in cb])
    pb = zero_shot_probs(mri_img, mr_pair, scale)
    out["tasks"]["mri_glioma_2way"] = _task(pb, np.where(tum, 0, 1), 0, cb)
    out["mri_test_patients"] = sorted({m["patient"] for m in mri_meta})
    tg, tn = prompt_embeddings(model, data, [reports.prompt(c, "MR") for c in ("Glioma", REFERENCE_CLASS)])
    out["heatmap_check"] = {"contrast (shipped map)": heatmap_check(mri_dense, mri_meta, tg, tn),
                            "raw cosine": heatmap_check(mri_dense, mri_meta, tg)}
    # head CT
    ct_img = embed_split(model, data, "ct")
    ct_meta = data.sets["ct"][1]
    hem = np.array([m["hemorrhage"] for m in ct_meta])
    cc = ["no significant abnormalities", "intracranial hemorrhage"]
    pc = zero_shot_probs(ct_img, prompt_embeddings(model, data, [reports.prompt(c, "CT") for c in cc]), scale)
    out["tasks"]["ct_2class"] = _task(pc, hem.astype(int), 1, cc)
    ct_pair = ct_prompts(model, data)
    pb = zero_shot_probs(ct_img, ct_pair, scale)
    out["tasks"]["ct_hemorrhage_2way"] = _task(pb, np.where(hem, 0, 1), 0, list(reports.BINARY_TASKS["CT"]))
    out["ct_test_groups"] = len({m["group"] for m in ct_meta})
    # engine vs baselines, calibration, localisation (issue 18)
    z_ct = scale * (ct_img @ ct_pair[0] - ct_img @ ct_pair[1])
    z_mr = scale * (mri_img @ mr_pair[0] - mri_img @ mr_pair[1])
    ct_groups = [m["group"] for m in ct_meta]
    ct_cmp, ct_cal = score_validation("head-CT haemorrhage AUC", z_ct, hem.astype(int), ct_groups,
                                      baseline_scores(train, data, "ct"), n_resamples)
    mr_cmp, mr_cal = score_validation("MRI glioma AUC", z_mr, tum.astype(int), [m["id"] for m in mri_meta],
                                      baseline_scores(train, data, "mri"), n_resamples)
    loc = localisation(mri_dense, data.sets["mri"][0], mri_meta, tg, tn, scale, mr_cal["temperature"], n_resamples)
    out["validation"] = ct_cmp.to_dict()
    out["comparisons"] = [ct_cmp.to_dict(), mr_cmp.to_dict(), *(c.to_dict() for c in loc["comparisons"])]
    out["calibration"] = {"CT": ct_cal, "MR": mr_cal}
    heat = loc["comparisons"][0]
    out["heatmap_validation"] = {"validated": heat.validated, "verdict": heat.verdict, "summary": heat.summary(),
                                 "studies": loc["studies"], "map": loc["map"]}
    out["calibration_file"] = asdict(Calibration(
        weights_sha256=sha, temperature={"CT": ct_cal["temperature"], "MR": mr_cal["temperature"]},
        heatmap_validated=heat.validated, heatmap_summary=heat.summary()))
    out["paper_unverified"] = PAPER
    out["table"] = table(out) + "\n\n" + comparison_table([ct_cmp, mr_cmp, *loc["comparisons"]]) + "\n" + \
        calibration_lines(out["calibration"])
    return out


def grouped(metric: Callable[[np.ndarray], float], groups: Sequence[str]) -> tuple[int, CaseMetric]:
    """Resample by group: ``(number of groups, metric on the rows of the resampled groups)``."""
    names = sorted(set(groups))
    rows = [np.array([i for i, g in enumerate(groups) if g == n]) for n in names]
    return len(names), lambda idx: metric(np.concatenate([rows[i] for i in idx]))


def baseline_scores(train: StudyData, val: StudyData, kind: str) -> tuple[str, np.ndarray]:
    """The honest baseline: logistic regression on intensity histograms (32 bins) + 32×32 pixels (the mean over
    each study's scans and slices), fitted on the TRAINING studies only; its positive-class probability on the
    validation studies."""
    def feats(d: StudyData) -> tuple[np.ndarray, np.ndarray]:
        imgs, meta = d.sets[kind]
        x = imgs.astype(np.float32).reshape(len(imgs), -1, *imgs.shape[-2:]).mean(1) / 255.0  # [S, H, W]
        y = np.array([m["hemorrhage" if kind == "ct" else "tumour"] for m in meta], dtype=np.int64)
        return np.concatenate([histogram_features(x, 32, (0.0, 1.0)), pixel_features(x, 32)], 1), y

    f_tr, y_tr = feats(train)
    f_va, _ = feats(val)
    base = LogisticBaseline(l2=1e-2).fit(f_tr, y_tr, n_classes=2)
    return ("logistic regression on intensity histogram (32 bins) + 32x32 pixels, fitted on the training split",
            base.predict_proba(f_va)[:, 1])


def score_validation(name: str, logits: np.ndarray, labels: np.ndarray, groups: Sequence[str],
                     baseline: tuple[str, np.ndarray], n_resamples: int) -> tuple[Comparison, dict]:
    """AUC of the engine's 2-way logit vs the baseline (bootstrap over ``groups``), and the temperature fitted
    on these validation logits with calibration before / after (in-sample and leave-one-group-out)."""
    n, eng = grouped(lambda r: roc_auc(labels[r], logits[r]), groups)
    _, ref = grouped(lambda r: roc_auc(labels[r], baseline[1][r]), groups)
    cmp = compare(name, baseline[0], eng, ref, n, n_resamples=n_resamples)
    t = fit_temperature(logits, labels.astype(np.float64), multiclass=False)
    cross = np.empty_like(logits, dtype=np.float64)
    for g in set(groups):
        inside = np.array([x == g for x in groups])
        tg = fit_temperature(logits[~inside], labels[~inside].astype(np.float64), multiclass=False)
        cross[inside] = sigmoid(logits[inside] / tg)
    cal = {"temperature": round(t, 4), "n": int(len(labels)), "groups": n,
           "before": calibration_report(sigmoid(logits), labels),
           "after_in_sample": calibration_report(sigmoid(logits / t), labels),
           "after_leave_one_group_out": calibration_report(cross, labels),
           "baseline": calibration_report(baseline[1], labels),
           "median_probability_before": float(np.median(sigmoid(logits))),
           "median_probability_after": float(np.median(sigmoid(logits / t)))}
    return cmp, cal


def brain_tokens(scan_u8: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """``[D', H', W']`` bool: tokens of a prepared scan ``[D, H, W]`` whose voxels are at least half brain."""
    d, h, w = (s // p for s, p in zip(scan_u8.shape, patch, strict=True))
    fg = (scan_u8 > 0).astype(np.float32)
    return fg.reshape(d, patch[0], h, patch[1], w, patch[2]).mean(axis=(1, 3, 5)) >= 0.5


def localisation(dense: list[np.ndarray], images: np.ndarray, meta: list[dict], t_find: np.ndarray,
                 t_norm: np.ndarray, scale: float, temperature: float, n_resamples: int) -> dict:
    """Pointing game and mass inside the tumour of the shipped map (per-token probability, brain tokens only) on
    the held-out tumour studies, against the brain-mask-centre token and a constant map inside the brain.

    Per study, each scan's map counts (a study scores the mean over its scans: the map the engine shows per scan).
    """
    hits, centre_hits, mass, const_mass = [], [], [], []
    for d, img, m in zip(dense, images, meta, strict=True):
        frac = np.asarray(m.get("token_tumour_fraction") or [], dtype=np.float64)
        if not m["tumour"] or frac.shape != d.shape[1:4]:
            continue
        tum = frac > 0
        pk = tuple(s // g for s, g in zip(img.shape[1:], d.shape[1:4], strict=True))  # patch size
        h, ms = [], []
        for s in range(d.shape[0]):
            brain = brain_tokens(img[s], pk)
            p = np.where(brain, token_probability(d[s] @ t_find, d[s] @ t_norm, scale, temperature), 0.0)
            h.append(float(tum.reshape(-1)[int(np.argmax(np.where(brain, p, -1.0)))]))
            ms.append(float((p * tum).sum() / max(p.sum(), 1e-12)))
        hits.append(float(np.mean(h)))
        mass.append(float(np.mean(ms)))
        brain0 = brain_tokens(img[0], pk)
        centre = np.rint(np.argwhere(brain0).mean(0)).astype(int)
        centre_hits.append(float(tum[tuple(centre)]))
        const_mass.append(float(tum[brain0].mean()))
    n = len(hits)
    if n < 2:
        return {"studies": n, "comparisons": [], "map": {}}
    rows = [compare("heatmap pointing game", "brain-mask centre token", mean_of(hits), mean_of(centre_hits), n,
                    n_resamples=n_resamples),
            compare("heatmap mass in tumour", "constant map inside the brain", mean_of(mass), mean_of(const_mass), n,
                    n_resamples=n_resamples)]
    return {"studies": n, "comparisons": rows,
            "map": {"kind": "per-token probability sigma(scale*(cos(patch,'Glioma') - cos(patch,'"
                            + REFERENCE_CLASS + "'))/T_MR), brain tokens only",
                    "hits": hits, "centre_hits": centre_hits, "mass": mass, "constant_mass": const_mass}}


def calibration_lines(cal: dict) -> str:
    """The calibration table: temperature, saturation shares and ECE before / after."""
    lines = [f"{'calibration (validation)':28s} {'T':>7s} {'<0.02':>6s} {'>0.98':>6s} {'ECE':>6s} "
             f"{'median p':>8s}"]
    for fam, c in cal.items():
        for label, key, med in (("before", "before", c["median_probability_before"]),
                                ("after (T fitted in-sample)", "after_in_sample", c["median_probability_after"]),
                                ("after (leave-one-group-out)", "after_leave_one_group_out", None),
                                ("baseline", "baseline", None)):
            r = c[key]
            t = f"{c['temperature']:7.3f}" if key == "after_in_sample" else f"{'':7s}"
            lines.append(f"{fam + ' ' + label:28s} {t} {r['below_0.02']:6.3f} {r['above_0.98']:6.3f} "
                         f"{r['ece']:6.3f} {'' if med is None else f'{med:8.3f}'}")
    return "\n".join(lines)


def heatmap_check(dense: list[np.ndarray], meta: list[dict], text: np.ndarray, ref: np.ndarray | None = None) -> dict:
    """Does the "Glioma" similarity map point at the tumour? (MRI test studies with tumour; no threshold tuned.)

    Per study, the map = cosine(patch feature, prompt) [− cosine(patch feature, reference prompt) when ``ref`` is
    given: the engine's contrast map] averaged over the two scans on the 6×6×6 grid.
    * pointing game: the map's maximum lies in a token with any tumour (chance = fraction of such tokens);
    * token AUC: tokens with ≥ 10 % tumour vs tokens with none, pooled over studies (0.5 = chance).
    """
    hits, chance, scores, labels = [], [], [], []
    for d, m in zip(dense, meta, strict=True):
        frac = np.asarray(m.get("token_tumour_fraction") or [], dtype=np.float64)
        if not m["tumour"] or frac.size == 0 or frac.shape != d.shape[1:4]:
            continue
        sim = (d @ text - (d @ ref if ref is not None else 0.0)).mean(0)
        hits.append(float(frac.reshape(-1)[int(sim.argmax())] > 0))
        chance.append(float((frac > 0).mean()))
        keep = (frac >= 0.1) | (frac == 0)
        scores += sim[keep].tolist()
        labels += (frac[keep] >= 0.1).astype(int).tolist()
    if not hits:
        return {"studies": 0}
    auc = roc_auc(np.array(labels), np.array(scores))
    return {"studies": len(hits), "pointing_game": round(float(np.mean(hits)), 4),
            "pointing_chance": round(float(np.mean(chance)), 4),
            "token_auc": None if math.isnan(auc) else round(auc, 4), "tokens": len(labels),
            "tumour_tokens": int(np.sum(labels))}


def table(r: dict) -> str:
    t = r["tasks"]
    rows = [("MRI, Pub-Brain-5 prompts (2 classes present)", "mri_pub_brain_5_prompts",
             f"{PAPER['pub_brain_5_mean_balanced_acc']:.3f} bACC*"),
            ("MRI, 'glioma' vs 'no glioma'", "mri_glioma_2way", "—"),
            ("head CT, normal vs haemorrhage", "ct_2class", f"{PAPER['rsna_macro_auc']:.3f} / {PAPER['cq500_macro_auc']:.3f} AUC*"),
            ("head CT, 'ICH' vs 'no ICH' (2-way)", "ct_hemorrhage_2way", "(RSNA / CQ500)")]
    lines = [f"held-out split: MRI {t['mri_pub_brain_5_prompts']['n']} studies (patient {', '.join(r['mri_test_patients'])}), "
             f"head CT {t['ct_2class']['n']} slices ({r['ct_test_groups']} groups)",
             f"{'task':46s} {'n+':>4s} {'n-':>4s} {'bACC':>7s} {'AUC':>7s}   paper*"]
    for name, k, paper in rows:
        d = t[k]
        auc = "n/a" if d["auc"] is None else f"{d['auc']:.3f}"
        lines.append(f"{name:46s} {d['n_pos']:4d} {d['n_neg']:4d} {d['balanced_accuracy']:7.3f} {auc:>7s}   {paper}")
    for kind, h in (r.get("heatmap_check") or {}).items():
        if h.get("studies"):
            lines.append(f"heatmap 'Glioma', {kind}, {h['studies']} MRI tumour studies: pointing game "
                         f"{h['pointing_game']:.3f} (chance {h['pointing_chance']:.3f}), token AUC tumour vs none "
                         f"{h['token_auc']} ({h['tumour_tokens']}/{h['tokens']} tokens); paper: not reported")
    lines.append("* paper figures unverified (quoted second-hand); paper: 220K MRI / 240K CT studies with real reports, "
                 "5 real classes; ours: 3 train patients + 110 CT slices, rule-generated texts, chance bACC = 0.5")
    return "\n".join(lines)


def write_beside_weights(result: dict, folder: Path, data_dir: Path) -> list[Path]:
    """Store what the engine reads beside the weights: ``calibration.json`` (temperatures and heatmap gate fitted
    above) and ``prompts.safetensors`` (the frozen encoder's vectors of the fixed prompts, from ``prepare``)."""
    from engines.hlip.prepare import all_prompts

    Calibration(**result["calibration_file"]).save(folder / CALIBRATION_FILE)
    t = np.load(data_dir / "texts.npz")
    index = {str(x): i for i, x in enumerate(t["texts"])}
    prompts = [p for p in dict.fromkeys(all_prompts()) if p in index]
    save_prompt_vectors(folder / PROMPTS_FILE, prompts, t["emb"][[index[p] for p in prompts]])
    return [folder / CALIBRATION_FILE, folder / PROMPTS_FILE]


def main(argv: list[str] | None = None) -> None:
    a = evaluate_parser("hlip", "HLIP zero-shot evaluation on the held-out split.").parse_args(argv)
    torch.set_num_threads(a.threads)
    r = evaluate(a.weights.resolve(), a.data)
    out = a.out or a.weights.parent / "eval.json"
    publish(r, "engines.hlip.evaluate", argv, r["table"], out)
    for p in write_beside_weights(r, a.weights.parent, a.data):
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
