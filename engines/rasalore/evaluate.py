"""Evaluate RASALoRE on the HELD-OUT patient only (``test.npz`` + ``gt_test.npz`` from :mod:`prepare`).

Usage::

    python -m engines.rasalore.evaluate --weights resources/weights/rasalore/model.safetensors \\
        --data data_prepared/rasalore --pseudo runs/rasalore --out eval.json

Per modality (FLAIR, T1c) of the test patient, and pooled:

* stage 2: the network on every brain slice's 128² crop → mask probability pasted back into its box on the
  240×240 grid, threshold 0.5 (fixed in advance, never tuned) → **per-slice Dice** (mean over slices with
  > 200 whole-tumour pixels) and **per-volume Dice** (the 3D mask of all 155 slices vs the whole tumour);
  slice score = maximum point activation → **AUROC / AUPRC** over labelled slices (tumour > 200 px vs no
  tumour; 1–200 px slices left out);
* stage 1 (DDPT, ``--ddpt`` weights, default ``ddpt.safetensors`` beside ``--weights``; or precomputed
  ``<pseudo>/pseudo_test.npz``): its pseudo-masks, kept where DDPT's own slice probability is > 0.5 (no label
  used), scored the same way; slice score = DDPT's p(tumour).

Ground-truth masks are read here and nowhere in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engines.common.evaluate import evaluate_parser, publish
from engines.common.metrics import average_precision, dice, roc_auc
from engines.rasalore.preprocess import paste_back
from engines.rasalore.weights_io import load_stage2
from engines.weights import sha256_file

#: No figure of the paper could be checked offline (no copy of the BMVC paper here; the authors' README
#: gives no numbers). Printed as "unverified" rather than invented.
PAPER = "unverified (paper not reachable offline; its README reports no numbers)"


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops ``[N, S, S]`` → (mask probability ``[N, s, s]``, slice score = max point activation ``[N]``)."""
    probs, scores = [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch].astype(np.float32))[:, None]
        logits, act, _ = model(x)
        probs.append(torch.sigmoid(logits)[:, 0].numpy())
        scores.append(act.flatten(1).max(1).values.numpy())
    return np.concatenate(probs), np.concatenate(scores)


def score_masks(masks128: np.ndarray, scores: np.ndarray, d: dict[str, np.ndarray], gt: dict[str, np.ndarray],
                sel: np.ndarray, threshold: float = 0.5) -> dict[str, object]:
    """Dice/AUROC/AUPRC for the slices ``sel`` of one (patient, modality) volume."""
    patient = str(d["patient"][sel][0])
    wt = gt[f"wt_{patient}"].astype(bool)
    boxes = np.full((wt.shape[0], 4), -1, np.int32)
    boxes[d["slice_index"][sel]] = d["boxes"][sel]
    order = np.argsort(d["slice_index"][sel])
    pred = paste_back(masks128[sel][order], boxes, wt.shape) > threshold
    labels = d["labels"][sel]
    per_slice = [dice(pred[k], wt[k]) for k in d["slice_index"][sel][labels == 1]]
    lab = labels >= 0
    y, s = labels[lab] == 1, scores[sel][lab]
    return {"patient": patient, "slices": int(sel.sum()), "tumour_slices": int((labels == 1).sum()),
            "healthy_slices": int((labels == 0).sum()),
            "dice_per_slice": round(float(np.mean(per_slice)), 4) if per_slice else None,
            "dice_volume": round(dice(pred, wt), 4),
            "auroc": round(roc_auc(y, s), 4), "auprc": round(average_precision(y, s), 4),
            "pred_voxels": int(pred.sum()), "gt_voxels": int(wt.sum())}


def evaluate(weights: Path, data: Path, pseudo: Path | None = None, threads: int = 1,
             ddpt: Path | None = None) -> dict[str, object]:
    torch.set_num_threads(threads)
    model = load_stage2(weights)
    with np.load(data / "test.npz") as f:
        d = {k: f[k] for k in f.files}
    with np.load(data / "gt_test.npz") as f:
        gt = {k: f[k] for k in f.files}
    prob, score = predict(model, d["images"])
    st1 = None
    ddpt = ddpt if ddpt is not None else weights.with_name("ddpt.safetensors")
    if pseudo is None and ddpt.exists():
        from engines.rasalore.train_ddpt import infer
        from engines.rasalore.weights_io import load_stage1

        p1, _, pm1 = infer(load_stage1(ddpt), d["images"], d["brain"], torch.device("cpu"))
        st1 = {"pseudo": pm1 * (p1 > 0.5)[:, None, None], "p_tumour": p1}
    elif pseudo is not None and (pseudo / "pseudo_test.npz").exists():
        with np.load(pseudo / "pseudo_test.npz") as f:
            st1 = {k: f[k] for k in f.files}
    rows: dict[str, object] = {}
    for mod in sorted(set(d["modality"].tolist())):
        sel = d["modality"] == mod
        row = {"stage2": score_masks(prob, score, d, gt, sel)}
        if st1 is not None:
            row["stage1_ddpt"] = score_masks(st1["pseudo"].astype(np.float32), st1["p_tumour"], d, gt, sel)
        rows[mod] = row
    pooled: dict[str, object] = {}
    for stage in ("stage2", "stage1_ddpt"):
        vals = [r[stage] for r in rows.values() if stage in r]  # type: ignore[index]
        if vals:
            pooled[stage] = {k: round(float(np.mean([v[k] for v in vals])), 4)
                             for k in ("dice_per_slice", "dice_volume", "auroc", "auprc")}
    cfg = model.config
    return {"engine": "rasalore", "weights": str(weights), "weights_sha256": sha256_file(weights),
            "stage1": (str(pseudo / "pseudo_test.npz") if pseudo is not None else
                       f"{ddpt} (sha256 {sha256_file(ddpt)})" if st1 is not None else None),
            "config": cfg.to_dict(), "parameters": int(sum(p.numel() for p in model.parameters())),
            "split": "held-out patient (test.npz): " + ", ".join(sorted(set(d["patient"].tolist()))),
            "threshold": 0.5, "per_modality": rows, "mean_over_modalities": pooled, "paper": PAPER}


def format_table(res: dict[str, object]) -> str:
    lines = [f"held-out: {res['split']}  (mask threshold {res['threshold']}, fixed)",
             f"{'modality':9s} {'stage':12s} {'Dice/slice':>10s} {'Dice/vol':>9s} {'AUROC':>7s} {'AUPRC':>7s}"]
    for mod, row in res["per_modality"].items():  # type: ignore[union-attr]
        for stage in ("stage1_ddpt", "stage2"):
            if stage in row:
                v = row[stage]
                lines.append(f"{mod:9s} {stage:12s} {str(v['dice_per_slice']):>10s} {v['dice_volume']:9.4f} "
                             f"{v['auroc']:7.4f} {v['auprc']:7.4f}")
    for stage, v in res["mean_over_modalities"].items():  # type: ignore[union-attr]
        lines.append(f"{'mean':9s} {stage:12s} {v['dice_per_slice']:10.4f} {v['dice_volume']:9.4f} "
                     f"{v['auroc']:7.4f} {v['auprc']:7.4f}")
    lines.append(f"paper: {res['paper']}")
    lines.append("Dice/slice: mean over test slices with > 200 tumour px; Dice/vol: whole-tumour 3D Dice over 155 slices;"
                 " AUROC/AUPRC: slice score (stage 2: max point activation; stage 1: DDPT p(tumour)).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("rasalore", "Evaluate rasalore on the held-out patient.")
    ap.add_argument("--ddpt", type=Path, default=None, help="stage-1 weights (default: ddpt.safetensors beside --weights)")
    ap.add_argument("--pseudo", type=Path, default=None, help="instead: folder with precomputed pseudo_test.npz")
    args = ap.parse_args(argv)
    res = evaluate(args.weights, args.data, args.pseudo, args.threads, args.ddpt)
    publish(res, "engines.rasalore.evaluate", argv, format_table(res), args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
