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

The paper's figures are quoted second-hand and marked unverified (no copy of the PDF offline).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engines.common.evaluate import evaluate_parser, publish
from engines.hlip import reports
from engines.hlip.metrics import balanced_accuracy, roc_auc, zero_shot_probs
from engines.hlip.reports import REFERENCE_CLASS
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


def evaluate(weights: Path, data_dir: Path) -> dict:
    from engines.hlip.weights_io import load_model

    torch.set_num_threads(1)
    model = load_model(weights)
    data = StudyData(data_dir, "test")
    scale = float(model.logit_scale.detach().clamp(max=math.log(100)).exp())
    out: dict = {"engine": "hlip", "weights": str(weights.relative_to(REPO) if weights.is_relative_to(REPO) else weights),
                 "weights_sha256": sha256_file(weights), "config": model.config.to_dict(), "split": "held-out (test)",
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
    pb = zero_shot_probs(mri_img, prompt_embeddings(model, data, [reports.prompt(c, "MR") for c in cb]), scale)
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
    cb = list(reports.BINARY_TASKS["CT"])
    pb = zero_shot_probs(ct_img, prompt_embeddings(model, data, [reports.prompt(c, "CT") for c in cb]), scale)
    out["tasks"]["ct_hemorrhage_2way"] = _task(pb, np.where(hem, 0, 1), 0, cb)
    out["ct_test_groups"] = len({m["group"] for m in ct_meta})
    out["paper_unverified"] = PAPER
    out["table"] = table(out)
    return out


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


def main(argv: list[str] | None = None) -> None:
    a = evaluate_parser("hlip", "HLIP zero-shot evaluation on the held-out split.").parse_args(argv)
    r = evaluate(a.weights.resolve(), a.data)
    publish(r, "engines.hlip.evaluate", argv, r["table"], a.out or a.weights.parent / "eval.json")


if __name__ == "__main__":
    main()
