"""Ship a trained run: copy its weights to resources/weights/multires_cxr/, evaluate them, write the cards.

Usage::

    python -m engines.multires_cxr.make_card --run runs/multires_cxr --data data_prepared/multires_cxr \
        --ablation runs/multires_cxr_whole

The numbers in ``card.json``/``card.md`` are the output of :func:`evaluate.evaluate` on the shipped file (the same
as ``python -m engines.multires_cxr.evaluate``), which also writes ``calibration.json`` (per-class temperatures and
operating points, fitted on validation) beside the weights. ``card.json["validation"]`` holds the macro-AUC
comparison with the baseline; the app reads its verdict.
"""

from __future__ import annotations

from pathlib import Path

from engines.common import card as scaffold
from engines.common import laterality
from engines.common.validation import VERDICT_TEXT
from engines.multires_cxr.evaluate import evaluate, format_table

OUT = scaffold.card_dir("multires_cxr")

LICENCE = ("Weights trained on ../shared/data/cxr, a selection of the COVID-19 image data collection "
           "(ieee8023/covid-chestxray-dataset via s-mostafa-a/covid-chestxray-dataset@173779d). Images: per-image "
           "licences CC BY 3.0/4.0, CC BY-SA, CC BY-NC-SA (121 of 209 NonCommercial-ShareAlike); the metadata "
           "(findings, clinical notes, used for the labels) is CC BY-NC-SA 4.0. Treat these weights as "
           "non-commercial, attribution, share-alike (CC BY-NC-SA 4.0). The lung-field model (lungVAE masks, no "
           "stated licence) gates the maps; lung boxes (CC BY 4.0) are used for evaluation only.")
LIMITS = [
    "Tiny data: 145 training images (81 patients); validation 64 images (34 patients), the held-out side of the "
    "patient-wise split. There is no third (test) split: calibration and operating points are fitted on the same "
    "validation images the metrics are reported on (the 2-fold cross-fitted ECE shows the honest calibration).",
    "Label space: what the data supports, not NIH-14: COVID-19 and bacterial pneumonia (the dataset's finding "
    "column), consolidation, opacity and bilateral involvement (mentioned in the clinical notes; known only for "
    "images with notes). Classes with fewer than 8 validation positives or negatives were dropped (see the counts).",
    "Note labels say 'the notes mention it', not 'a radiologist saw it on this image'; notes sometimes describe CT "
    "or another radiograph of the same patient.",
    "Localisation is scored against lung masks/boxes (the data has no lesion boxes): it shows whether the map stays "
    "in the lungs, not whether it marks the lesion.",
    "Trained from scratch (no pre-trained backbone offline) at 256 px (64x64 map grid; the largest size whose "
    "training fits the ~12 CPU-minute budget on this shared 2-core machine) with a 0.4 M-parameter network; the "
    "paper trained at 512 px on ~112k NIH images.",
    "Not validated on DICOM CR/DX from real scanners; MONOCHROME1 inversion is the reader's job.",
    "The lung-field gate (engines/common/lung_fields.py) gives filled lung fields: a U-Net trained on per-lung "
    "convex hulls of the lungVAE masks, its output hulled per lung, so dense consolidation lies inside the map and "
    "the pooling region (on the held-out lobar pneumonia streptococcus-pneumoniae-pneumonia-1.png the old, "
    "aerated-lung gate cut the consolidated right lung out). The filled field also takes in the costophrenic "
    "recesses and a wedge of the left heart border, and it is larger than the aerated lungVAE masks the "
    "localisation is scored against, so 'mass inside (lung mask)' is lower than with the old gate by "
    "construction.",
    "Previous weights (same recipe and command, pooled over the old aerated-lung gate; SHA-256 9580b4f6...): "
    "macro AUC 0.623 [0.548, 0.711] vs the same baseline 0.562, mass inside lung mask 0.951 / lung boxes 0.990. "
    "They were replaced for the anatomically correct gate; compare with the table above.",
]


def _fmt(iv: dict) -> str:
    return f"{iv['value']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def _ablation_md(runs: list[Path]) -> list[str]:
    """Rows for declared ablation runs (same recipe, one change; evaluated on validation, never shipped)."""
    if not runs:
        return []
    md = ["## Ablation (declared before training, not eligible for shipping)", "",
          "| run | pooling region | macro AUC (validation) | ungated map: pointing / mass in lung mask |",
          "|---|---|---|---|"]
    for run in runs:
        e, s = scaffold.read_json(run / "eval.json"), scaffold.read_json(run / "train_summary.json")
        loc = e["localisation"]["summary"].get("lung mask", {})
        md.append(f"| {run.name} | {s.get('pool_region')} | {_fmt(e['validation']['engine'])} | "
                  f"{loc.get('raw_point', float('nan')):.2f} / {loc.get('raw_mass', float('nan')):.2f} |")
    return [*md, "", "Same recipe (600 steps, batch 8, seed 0) with only the pooling region changed; the shipped run "
            "pools over the lung fields (macro AUC and ungated-map numbers above).", ""]


def main(argv: list[str] | None = None) -> None:
    ap = scaffold.card_parser("multires_cxr", "Ship weights and write the model card.")
    ap.add_argument("--ablation", type=Path, nargs="*", default=[],
                    help="run folders of declared ablations (not shipped) with their eval.json and summary")
    args = ap.parse_args(argv)
    scaffold.ship(args.run, OUT)
    weights = OUT / "model.safetensors"
    summary = scaffold.read_json(args.run / "train_summary.json")
    log = (args.run / "train_log.jsonl").read_text().splitlines()
    res = scaffold.record_evaluation(evaluate(weights, args.data), weights, "multires_cxr", args.data_arg)
    table = format_table(res)
    val = res["validation"]
    plain = ("beats the baseline on validation" if val["verdict"] == "better"
             else f"{VERDICT_TEXT[val['verdict']]}")
    cal = res["calibration"]
    card = {
        "engine": "multires_cxr",
        "title": "Multi-resolution CXR (LSE-LBA)",
        "paper": "Yao et al. 2018, Weakly supervised medical diagnosis and localization from multiple resolutions, "
                 "arXiv:1803.07703",
        **scaffold.weights_entry(weights),
        "config": summary["config"],
        "labels": res["label_counts"]["kept"],
        "data": {"source": "../shared/data/cxr (209 frontal CXR PNGs, 115 patient ids)",
                 "labels": "engines/common/cxr_findings.py: the finding column (COVID-19, bacterial pneumonia) and "
                           "un-negated mentions in the clinical notes (consolidation, opacity, bilateral "
                           "involvement); unknown labels masked; per-class counts in label_counts",
                 "label_counts": res["label_counts"],
                 "split": "engines/multires_cxr/split.json: by patient, near-duplicates joined, stratified, "
                          "seed 20180321, 30 % held out as validation (unchanged)",
                 "train_images": summary["train_images"], "validation_images": res["validation_images"],
                 "prepare": f"python -m engines.multires_cxr.prepare --data ../shared/data/cxr --out "
                            f"{args.data_arg} --sizes 256"},
        "training": {"steps": summary["steps"], "batch_size": summary["batch_size"], "lr": summary["lr"],
                     "hardware": summary["hardware"], "where": "this shared 2-core CPU machine (no GPU)",
                     "time_s": summary["time_s"], "pool_region": summary.get("pool_region"),
                     "command": summary["command"].replace(str(args.data), args.data_arg).replace(
                         str(args.run), "runs/multires_cxr"),
                     "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
                     "log": "train_log.jsonl", "log_lines": len(log)},
        "metrics": {"command": res["command"], "evaluate_output": res, "table": table},
        "validation": val,
        "calibration": cal,
        "licence": LICENCE,
        "intended_use": "research demo weights, not for clinical use. Shows how LSE-LBA class maps look on a "
                        "chest radiograph in Lucent.",
        "limits": LIMITS,
        "saliency": "per-finding instance probability sigmoid(S/T) on a 64x64 grid (input/4), fixed 0-1 scale, "
                    "zero outside the predicted lung fields, drawn from the class's validation operating point up",
    }
    b, a = cal["before"], cal["after"]
    md = [*scaffold.md_head(card, "multires_cxr"),
          f"**Verdict: {plain}** ({val['summary']}).", "" if val["verdict"] == "better" else
          "The app marks these scores as not validated: below or level with a logistic regression on 64x64 pixels "
          "- demo only.", "",
          "## Engine vs baseline (validation split)", "",
          "| | engine | baseline (logistic regression, 64x64 px, train split) | engine - baseline | verdict |",
          "|---|---|---|---|---|"]
    for c in [val, *res["per_class"].values()]:
        md.append(f"| {c['metric']} | {_fmt(c['engine'])} | {_fmt(c['reference'])} | {_fmt(c['difference'])} "
                  f"| {c['verdict']} |")
    md += ["", "Bootstrap 95 % intervals over the validation images (paired).", "",
           "## Localisation (validation images with a lung mask / lung boxes)", "",
           "| | engine (map as shown) | average training lung mask | engine - baseline | verdict |",
           "|---|---|---|---|---|"]
    for c in res["localisation"]["comparisons"]:
        md.append(f"| {c['metric']} | {_fmt(c['engine'])} | {_fmt(c['reference'])} | {_fmt(c['difference'])} "
                  f"| {c['verdict']} |")
    raw = res["localisation"]["summary"].get("lung mask", {})
    md += ["", "The data has no lesion boxes, so these measure whether the map stays in the lungs, not whether it "
           "marks the lesion. The map as shown is gated by the filled lung fields, which are larger than the aerated "
           "lungVAE masks scored here (they take in consolidation), so a peak on a consolidation outside the aerated "
           "mask counts as a miss; the network's own ungated map puts "
           f"{raw.get('raw_mass', float('nan')):.2f} of its mass inside the lung masks (pointing game "
           f"{raw.get('raw_point', float('nan')):.2f}): outside the lung fields it gets no training signal (pooling "
           "covers the lungs only) and is never shown.", "",
           *_ablation_md(args.ablation),
           "## Paper figures", "",
           "Yao et al. report per-class test AUCs of about 0.70-0.91 on NIH ChestX-ray14 (14 findings, ~112k "
           "images; recalled, not checked against the PDF offline). Not comparable: different findings, ~150 "
           "training images, rule-read labels, a 0.4 M-parameter network trained from scratch for minutes.", "",
           "## Calibration", "",
           f"Per-class temperature fitted on the validation logits (stored in calibration.json, applied by the "
           f"engine): share < 0.02 {b['below_0.02']:.2f} -> {a['below_0.02']:.2f}, share > 0.98 "
           f"{b['above_0.98']:.2f} -> {a['above_0.98']:.2f}, ECE {b['ece']:.3f} -> {a['ece']:.3f} (2-fold "
           f"cross-fitted ECE {cal['ece_after_2fold_crossfit']:.3f}).", "",
           "## Model", "",
           f"{summary['config']['input_size']} px input (64x64 map grid), ResNet-style encoder (widths "
           f"{summary['config']['widths']}, blocks {summary['config']['blocks']}), coarse-to-fine decoder with dense "
           "connections, class maps at 4 resolutions fused per class, LSE-LBA pooling of the instance probabilities "
           f"sigmoid(S) as in the paper (r0 = {summary['config']['r0']}, beta learnable), pooled over the lung "
           "fields predicted by engines/common/lung_fields.py; masked per-class BCE.", "",
           "## Data", "", card["data"]["labels"] + ". " + card["data"]["split"] + ".",
           f"Prepared with `{card['data']['prepare']}`.", "",
           "## Training", "",
           f"`{card['training']['command']}` - {summary['steps']} steps, batch {summary['batch_size']}, "
           f"{summary['time_s']:.0f} s on {summary['hardware']} (this machine, no GPU); loss "
           f"{summary['first_loss']:.3f} -> {summary['last_loss']:.3f} (per-step log in train_log.jsonl).", "",
           "## Evaluation output", "", f"`{res['command']}`", "", "```", table, "```", "",
           *scaffold.md_licence_limits(LICENCE, LIMITS),
           "", "## Output in Lucent", "",
           "Calibrated probabilities for the kept findings and one map per top-3 finding: " + card["saliency"] + "."]
    scaffold.write_card(OUT, card, md, table)
    laterality.add_to_card(OUT)  # keeps the side check (evaluate --side-agreement) in the card


if __name__ == "__main__":
    main()
