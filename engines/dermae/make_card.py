"""Ship a trained DERMAE run: copy weights to resources/weights/dermae/, evaluate them, write the cards.

Usage::

    python -m engines.dermae.make_card --run runs/dermae --data data_prepared/dermae

Ships ``student_kd`` (the paper's recipe: real + synthetic, distilled from the MAE teacher — chosen before any
evaluation, not by test score) as ``model.safetensors`` and the teacher as ``teacher.safetensors``. The
numbers in ``card.json``/``card.md`` are the output of :func:`evaluate.evaluate` on the shipped files (the
same as the evaluate CLI); the ablation rows evaluate ``student_real``, ``student_synth`` and ``student_kd`` of
the same run on the same held-out split. Also copies the contact sheet and the synthetic-image quality report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engines.common import card as scaffold
from engines.dermae.data import CLASSES
from engines.dermae.evaluate import evaluate, format_table, measure_latency
from engines.dermae.weights_io import load_model, sha256

OUT = scaffold.card_dir("dermae")
STAGES = ("ae", "ldm", "mae", "teacher", "student_real", "student_synth", "student_kd", "teacher_scratch")

LICENCE = ("Weights trained on ../shared/data/dermoscopy: 600 ISIC-2017 challenge training images "
           "(via walidbousseta/image_mining@04943b8; labels and masks via ranUser01/Melanoma-image-detection-ML"
           "@a1a58b0). Neither repository states a licence; the ISIC Archive licenses each image CC0 or CC BY-NC, "
           "not checked per image. Treat these weights as research-only, non-commercial (CC BY-NC 4.0), and "
           "attribute ISIC (Codella et al., ISBI 2017 challenge).")
LIMITS = [
    "Tiny data: 450 training images (melanoma 80, seborrheic keratosis 62, nevus 308); held-out 150 images "
    "(27 / 20 / 103). One held-out minority image moves its class F1 by several points.",
    "Everything runs at 64×64 px (the paper works at 224 px with a ViT-Huge teacher); the demo teacher is a "
    "4-block, 128-d ViT (0.8 M parameters) pre-trained by MAE for only a few hundred steps on ~930 images.",
    "The latent diffusion model is tiny and briefly trained (CPU, minutes): synthetic lesions are blurry and "
    "far less diverse than real ones (see contact_sheet.png and quality.json).",
    "The whole pipeline (autoencoder, diffusion, MAE, teacher, 3 students) was trained once, with one seed, on "
    "a shared 2-core CPU in under 30 minutes: no confidence intervals, no hyper-parameter search.",
    "The photos are squashed to a square (the source data lost the aspect ratio); no physical pixel size.",
    "Grad-CAM is on an 8×8 grid (the student's last stage) — a coarse map; it is not a segmentation.",
    "Not validated on other dermatoscopes, skin types or clinical (non-dermoscopic) photos.",
]


def _summary(run: Path, stage: str) -> dict[str, object]:
    p = run / stage / "train_summary.json"
    return json.loads(p.read_text()) if p.exists() else {}


def main(argv: list[str] | None = None) -> None:
    ap = scaffold.card_parser("dermae", "Ship DERMAE weights and write the model card.")
    ap.add_argument("--run-arg", default="runs/dermae", help="how --run is spelled in the commands")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    student_w, teacher_w = OUT / "model.safetensors", OUT / "teacher.safetensors"
    shutil.copyfile(args.run / "student_kd" / "model.safetensors", student_w)
    shutil.copyfile(args.run / "teacher" / "model.safetensors", teacher_w)
    shutil.copyfile(args.run / "contact_sheet.png", OUT / "contact_sheet.png")
    quality = json.loads((args.run / "quality.json").read_text())
    (OUT / "quality.json").write_text(json.dumps(quality, indent=1) + "\n")
    log_lines: list[str] = []
    for st in STAGES:
        p = args.run / st / "train_log.jsonl"
        if p.exists():
            log_lines += [line.replace('"stage": "student"', f'"stage": "{st}"').replace(
                '"stage": "teacher"', f'"stage": "{st}"') for line in p.read_text().splitlines()]
    (OUT / "train_log.jsonl").write_text("\n".join(log_lines) + "\n")
    res = scaffold.record_evaluation(evaluate(student_w, args.data), student_w, "dermae", args.data_arg)
    tres = scaffold.record_evaluation(evaluate(teacher_w, args.data), teacher_w, "dermae", args.data_arg,
                                      "eval_teacher.json")
    student, teacher = load_model(student_w), load_model(teacher_w)
    size = res["config"]["image_size"]  # type: ignore[index]
    lat = {"student": measure_latency(student, size, threads=2), "teacher": measure_latency(teacher, size, threads=2)}
    ablation = []
    for variant, desc in (("real", "real only, cross-entropy"), ("synth", "real + synthetic, cross-entropy"),
                          ("kd", "real + synthetic, KD from MAE teacher (shipped)")):
        e = evaluate(args.run / f"student_{variant}" / "model.safetensors", args.data)
        s = _summary(args.run, f"student_{variant}")
        ablation.append({"variant": f"student_{variant}", "training": desc, "steps": s.get("steps"),
                         "train_images": (s.get("train_images_real"), s.get("train_images_synthetic")),
                         "balanced_accuracy": e["balanced_accuracy"], "f1": e["f1"],
                         "minority_f1_mean": e["minority_f1_mean"], "macro_f1": e["macro_f1"],
                         "macro_auc": e["macro_auc"]})
    ablation.append({"variant": "teacher", "training": "MAE-pretrained ViT, fine-tuned on real + synthetic",
                     "steps": _summary(args.run, "teacher").get("steps"), "train_images": None,
                     "balanced_accuracy": tres["balanced_accuracy"], "f1": tres["f1"],
                     "minority_f1_mean": tres["minority_f1_mean"], "macro_f1": tres["macro_f1"],
                     "macro_auc": tres["macro_auc"]})
    scratch = args.run / "teacher_scratch" / "model.safetensors"
    if scratch.exists():  # optional ablation: the same teacher without MAE pre-training
        e = evaluate(scratch, args.data)
        ablation.append({"variant": "teacher_scratch", "training": "same ViT, no MAE pre-training (ablation)",
                         "steps": _summary(args.run, "teacher_scratch").get("steps"), "train_images": None,
                         "balanced_accuracy": e["balanced_accuracy"], "f1": e["f1"],
                         "minority_f1_mean": e["minority_f1_mean"], "macro_f1": e["macro_f1"],
                         "macro_auc": e["macro_auc"]})
    findings = _findings(ablation, quality)
    stages = {st: {k: v for k, v in _summary(args.run, st).items()
                   if k in ("steps", "batch_size", "lr", "time_s", "first_20_mean", "last_20_mean",
                            "latent_scale_factor", "train_recon_mean_abs_error_8bit", "mae_pretrained",
                            "train_images_real_plus_synthetic", "mask_ratio", "kd", "variant", "command")}
              for st in STAGES}
    total_s = sum(float(v.get("time_s", 0)) for v in stages.values()) + float(quality.get("time_s", 0))
    ks = _summary(args.run, "student_kd")
    card = {
        "engine": "dermae",
        "title": "DERMAE dermoscopy (distilled student)",
        "paper": "DERMAE (seed 001, DESIGN §3.4): class-conditional latent diffusion balancing + MAE-pretrained "
                 "ViT teacher + knowledge distillation into a small student",
        **scaffold.weights_entry(student_w),
        "config": res["config"],
        "teacher": {"weights_file": teacher_w.name, "sha256": sha256(teacher_w),
                    "size_bytes": teacher_w.stat().st_size, "params": tres["params"],
                    "metrics": {"command": tres["command"], "evaluate_output": tres, "table": format_table(tres)}},
        "params": {"student": res["params"], "teacher": tres["params"]},
        "latency_cpu_ms": {**lat, "note": f"forward of one {size}×{size} image, 2 threads, shared 2-core CPU; "
                                          "see bench/bench_dermae.py for the end-to-end engine time"},
        "data": {"source": "../shared/data/dermoscopy (600 ISIC-2017 images, 256×256, melanoma 107 / SK 82 / nevus 411)",
                 "split": "engines/dermae/split.json: by image id, stratified by diagnosis, seed 20170001, 25 % held "
                          "out; ISIC_0000224 + ISIC_0014791 (same lesion) on the same side",
                 "train_images": ks.get("train_images_real"), "synthetic_images": ks.get("train_images_synthetic"),
                 "test_images": res["test_images"], "test_counts": res["test_counts"],
                 "prepare": f"python -m engines.dermae.prepare --data ../shared/data/dermoscopy --out {args.data_arg} --sizes 64"},
        "training": {"steps": {st: v.get("steps") for st, v in stages.items()},
                     "stages": stages,
                     "hardware": ks.get("hardware"),
                     "time_s": round(total_s, 1),
                     "time": f"{total_s:.0f} s ({total_s / 60:.1f} min) wall clock for all stages, shared 2-core CPU",
                     "command": f"python -m engines.dermae.train --stage all --data {args.data_arg} --out {args.run_arg}",
                     "log": "train_log.jsonl (every stage, one line per step)", "log_lines": len(log_lines)},
        "metrics": {"command": res["command"], "evaluate_output": res, "table": format_table(res)},
        "ablation": {"note": "same held-out split, same seed, same steps (500) for every student; the shipped model "
                            "is student_kd, chosen before evaluation", "rows": ablation},
        "findings": findings,
        "synthetic_quality": quality,
        "saliency": "Grad-CAM on the student's last conv stage (8×8 grid for 64 px input), min-max normalised",
        "paper_figures": {"note": "the seed gives no numbers and no copy of the paper was reachable offline; the "
                                  "paper's claims: balancing with synthetic minority images raises minority-class "
                                  "F1, and the distilled student approaches the ViT-Huge teacher"},
        "licence": LICENCE,
        "intended_use": "research demo weights, not for clinical use. Shows DERMAE class probabilities and a Grad-CAM "
                        "overlay on a dermoscopy photo in Lucent.",
        "limits": LIMITS,
    }
    scaffold.write_card(OUT, card, [card_md(card, res, tres, ablation, quality, lat)],
                        "\n".join([format_table(res), format_table(tres), ablation_table(ablation)]))


def _findings(rows: list[dict[str, object]], quality: dict[str, object]) -> list[str]:
    """Plain statements read off the ablation rows and the quality report (no numbers typed by hand)."""
    by = {r["variant"]: r for r in rows}
    out = []
    if all(k in by for k in ("student_real", "student_synth", "student_kd")):
        r, s, k = (by[v]["minority_f1_mean"] for v in ("student_real", "student_synth", "student_kd"))
        verdict = "rises" if max(s, k) > r else "does not rise"  # type: ignore[operator]
        out.append(f"Does balancing with synthetic images raise minority-class F1 here? Mean F1 of melanoma and "
                   f"seborrheic keratosis: real only {r:.3f}, + synthetic {s:.3f}, + synthetic + KD {k:.3f} — it "
                   f"{verdict}. With 27 + 20 held-out minority images these differences are within noise.")
    if "teacher" in by and "student_kd" in by:
        out.append(f"Teacher vs distilled student: balanced accuracy {by['teacher']['balanced_accuracy']:.3f} vs "
                   f"{by['student_kd']['balanced_accuracy']:.3f}, macro AUC {by['teacher']['macro_auc']:.3f} vs "
                   f"{by['student_kd']['macro_auc']:.3f}.")
    if "teacher_scratch" in by and "teacher" in by:
        out.append(f"MAE pre-training: teacher balanced accuracy {by['teacher']['balanced_accuracy']:.3f} with vs "
                   f"{by['teacher_scratch']['balanced_accuracy']:.3f} without (same fine-tuning steps).")
    pc = quality.get("per_class", {})
    if pc:
        fid = ", ".join(f"{c} {v['fid_ae_synthetic_vs_real']:.1f} (real half-vs-half floor "  # type: ignore[union-attr]
                        f"{v['fid_ae_real_half_vs_half']:.1f})" for c, v in pc.items())  # type: ignore[union-attr]
        nn = ", ".join(f"{c} {v['nn_feature_median']:.2f}" for c, v in pc.items())  # type: ignore[union-attr]
        out.append(f"Synthetic images are far from the real distribution: FID-AE {fid}. They do not copy training "
                   f"images: median nearest-real-neighbour feature distance {nn} vs "
                   f"{quality['real_loo_nn_feature_median']:.2f} between real training images.")
    out.append("All models are near chance on this held-out split (balanced accuracy 1/3 = always one class); "
               "every model mostly predicts nevus. The paper's figures could not be checked offline (the seed "
               "summary gives none).")
    return out


def ablation_table(rows: list[dict[str, object]]) -> str:
    """Markdown table of the ablation rows."""
    out = ["| model | training | bal. acc | F1 MEL | F1 SK | F1 NEV | minority F1 | macro AUC |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["f1"]
        out.append(f"| {r['variant']} | {r['training']} | {r['balanced_accuracy']:.3f} | {f[CLASSES[0]]:.3f} | "  # type: ignore[index]
                   f"{f[CLASSES[1]]:.3f} | {f[CLASSES[2]]:.3f} | {r['minority_f1_mean']:.3f} | {r['macro_auc']:.3f} |")  # type: ignore[index]
    return "\n".join(out)


def card_md(card: dict, res: dict, tres: dict, ablation: list, quality: dict, lat: dict) -> str:  # type: ignore[type-arg]
    tr = card["training"]
    st = tr["stages"]
    q_rows = ["| class | generated | NN dist. (feature, median) | NN dist. (pixel RMS, median / min) | FID-AE syn vs real | FID-AE real half vs half |",
              "|---|---|---|---|---|---|"]
    for c, v in quality["per_class"].items():
        q_rows.append(f"| {c} | {v['n_synthetic']} | {v['nn_feature_median']:.3f} | {v['nn_pixel_rms_median']:.1f} / "
                      f"{v['nn_pixel_rms_min']:.1f} | {v['fid_ae_synthetic_vs_real']:.3f} | {v['fid_ae_real_half_vs_half']:.3f} |")
    return "\n".join([
        f"# {card['title']} — model card", "",
        "**research demo weights, not for clinical use**", "",
        f"Paper: {card['paper']}. Our implementation: engines/dermae. Shipped: student `model.safetensors` (fp16, "
        f"{card['size_bytes'] / 1e6:.2f} MB, SHA-256 `{card['sha256']}`) and teacher `teacher.safetensors` (fp16, "
        f"{card['teacher']['size_bytes'] / 1e6:.2f} MB, SHA-256 `{card['teacher']['sha256']}`).", "",
        "## Model", "",
        "Demo config, 64×64 px RGB. (1) KL autoencoder to a 4×16×16 latent; (2) class-conditional latent DDPM "
        "(U-Net 48/96/96, linear β, T = 1000, 10 % label dropout) sampled with DDIM (50 steps, η = 0, classifier-free "
        "guidance 2) to add synthetic melanoma and seborrheic-keratosis images until every class matches nevus; "
        "(3) MAE pre-training (75 % masking, per-patch-normalised pixel loss, MAE module names) of a ViT teacher "
        "(patch 8, 128-d, 4 blocks, 4 heads) on real + synthetic, fine-tuned with cross-entropy; (4) a 4-stage CNN "
        "student distilled with Hinton KD (T = 4, α = 0.7: α T² KL + (1 − α) CE). The paper config (224 px, "
        "ViT-Huge/14 teacher) is in the code but was not trained.", "",
        f"Parameters: student {res['params']:,}, teacher {tres['params']:,}. CPU latency per 64×64 image (forward, "
        f"2 threads, shared machine): student {lat['student']['median_ms']:.2f} ms (p90 {lat['student']['p90_ms']:.2f}), "
        f"teacher {lat['teacher']['median_ms']:.2f} ms (p90 {lat['teacher']['p90_ms']:.2f}). Target ≤ 50 ms.", "",
        "## Data", "",
        f"{card['data']['source']}; {card['data']['split']}. Training: {card['data']['train_images']} real + "
        f"{card['data']['synthetic_images']} synthetic images; held-out: {res['test_images']} images "
        f"({', '.join(f'{k} {v}' for k, v in res['test_counts'].items())}). Prepared with `{card['data']['prepare']}`.",
        "",
        "## Training", "",
        f"`{tr['command']}` — {tr['time']}, {tr['hardware']}. Steps: "
        + ", ".join(f"{k} {v.get('steps')} ({v.get('time_s')} s)" for k, v in st.items())
        + ". Loss (mean of first → last 20 steps): "
        + ", ".join(f"{k} {v.get('first_20_mean', float('nan')):.3f} → {v.get('last_20_mean', float('nan')):.3f}"
                    for k, v in st.items()) + ". Per-step log: train_log.jsonl.", "",
        "## Evaluation (held-out split only)", "",
        f"Student (shipped): `{res['command']}`", "", "```", format_table(res), "```", "",
        f"Teacher: `{tres['command']}`", "", "```", format_table(tres), "```", "",
        "## Ablation (same split, same steps)", "", ablation_table(ablation), "",
        "## Findings", "", *[f"- {x}" for x in card["findings"]], "",
        "## Synthetic images", "",
        "Contact sheet: `contact_sheet.png` (rows MEL / SK / NEV; left real training images, right synthetic). "
        "Quality figures (quality.json) use **our own autoencoder's features** (latent means pooled to 4×4, 64-d) — "
        "not Inception, so FID-AE is not comparable with published FIDs. Nearest-real-neighbour distances are to the "
        "real training images; reference: each real training image's distance to its nearest other real image "
        f"(median {quality['real_loo_nn_feature_median']:.3f} in features, "
        f"{quality['real_loo_nn_pixel_rms_median']:.1f} in 8-bit pixel RMS).", "",
        *q_rows, "",
        "## Licence", "", card["licence"], "",
        "## Limits", "", *[f"- {x}" for x in card["limits"]],
    ])


if __name__ == "__main__":
    main()
