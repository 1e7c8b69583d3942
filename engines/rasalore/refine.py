"""Refine the stage-1 (DDPT) pseudo-masks within their box on FLAIR, for box-point targets of stage 2 (torch + numpy).

Usage::

    python -m engines.rasalore.refine --data data_prepared/rasalore \\
        --ddpt resources/weights/rasalore/ddpt.safetensors --out runs/rasalore_refined

For every slice labelled tumour (slice labels only; no ground truth), per 128² crop:

1. the stage-1 pseudo-mask (DDPT patch map > 0.5, :func:`engines.rasalore.ddpt.pseudo_masks`) and its bounding
   box grown by :data:`MARGIN` px — the "stage-1 box";
2. inside the box and the brain, the same patient's co-registered FLAIR slice (for T1c slices too) is split into
   two classes by Otsu's threshold (a GrabCut-like fore/background split on intensity, no parameter tuned on labels);
3. the bright pixels connected to the stage-1 mask are kept; when nothing is left, the stage-1 mask stays.

Writes ``pseudo_train.npz`` / ``pseudo_val.npz`` in the layout :mod:`engines.rasalore.train` reads (``pseudo``
uint8 ``[N, 128, 128]``, ``p_tumour``), and ``refine_summary.json`` with the validation patient's pseudo-mask Dice
against its label before/after (a measurement only: nothing is chosen on it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engines.rasalore.postprocess import grow_in_box

MARGIN = 8


def refine_one(pm: np.ndarray, flair: np.ndarray, brain: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """One slice (see the module docstring): ``pm``, ``brain`` bool ``[S, S]``, ``flair`` ``[S, S]`` → bool."""
    return grow_in_box(pm, flair, brain, margin)


def refine_side(d: dict[str, np.ndarray], pseudo: np.ndarray, slice_ok: np.ndarray) -> np.ndarray:
    """Refined pseudo-masks of one prepared side (``d`` from ``<side>.npz``); ``slice_ok`` marks tumour slices."""
    flair_of = {(p, k): i for i, (p, m, k) in enumerate(zip(d["patient"], d["modality"], d["slice_index"],
                                                               strict=True)) if m == "flair"}
    out = np.zeros_like(pseudo, dtype=np.uint8)
    for i in np.nonzero(slice_ok)[0]:
        j = flair_of.get((d["patient"][i], d["slice_index"][i]), i)
        out[i] = refine_one(pseudo[i].astype(bool), d["images"][j].astype(np.float32), d["brain"][i].astype(bool))
    return out


def main(argv: list[str] | None = None) -> None:
    from engines.rasalore.common import load_side
    from engines.rasalore.train_ddpt import infer
    from engines.rasalore.weights_io import load_stage1

    ap = argparse.ArgumentParser(description="Refine stage-1 pseudo-masks within their box on FLAIR.")
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    ap.add_argument("--ddpt", type=Path, default=Path("resources/weights/rasalore/ddpt.safetensors"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_stage1(args.ddpt)
    summary: dict[str, object] = {"margin_px": MARGIN}
    for side in ("train", "val"):
        d = load_side(args.data, side)
        p, _, pm = infer(model, d["images"], d["brain"], torch.device("cpu"))
        tumour = d["labels"] == 1  # the slice label decides which slices get a pseudo-mask (weak supervision)
        stage1 = pm * tumour[:, None, None]
        refined = refine_side(d, stage1, tumour)
        np.savez_compressed(args.out / f"pseudo_{side}.npz", pseudo=refined, p_tumour=p, labels=d["labels"])
        np.savez_compressed(args.out / f"stage1_{side}.npz", pseudo=stage1.astype(np.uint8), p_tumour=p)
        if side == "val":  # measurement only
            from engines.common.metrics import dice

            with np.load(args.data / "gt_val.npz") as f:
                wt = f["wt128"].astype(bool)
            idx = np.nonzero(tumour)[0]
            summary["val_pseudo_dice_vs_label"] = {
                "stage1": round(float(np.mean([dice(stage1[i], wt[i]) for i in idx])), 4),
                "refined": round(float(np.mean([dice(refined[i], wt[i]) for i in idx])), 4), "slices": int(len(idx))}
    (args.out / "refine_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
