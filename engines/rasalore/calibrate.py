"""Choose the engine's post-processing and calibrate its tumour score on the VALIDATION patient (torch + numpy).

Usage::

    python -m engines.rasalore.calibrate --weights resources/weights/rasalore/model.safetensors \\
        --data data_prepared/rasalore

Runs the shipped stage-2 network (:func:`engines.rasalore.pipeline.segment`, the app's code) on the validation
patient's FLAIR and T1c (``volumes_val.npz``; its whole-tumour label ``gt_val.npz`` — read here for choosing the
post-processing, never by training, never the test patient), then:

* :func:`choose_params`: a small grid (mask threshold, in-plane brain erosion, component rule, and for FLAIR the
  refinement: none, a brain-intensity percentile, or region growing in the mask's box) maximising the per-volume Dice on the validation patient — one parameter set for any
  sequence (mean over FLAIR and T1c) and one for volumes known to be FLAIR;
* :func:`fit_platt`: Platt scaling (``p = σ(a·z + b)``, z = logit of the slice's largest point activation; the
  temperature ``1/a`` plus a bias, because the raw scores sit near 1 on healthy slices too, so a temperature
  alone cannot centre them) fitted on the validation slices' labels (tumour > 200 px vs none).

Writes ``postprocess.json`` beside the weights; the engine reads it at inference.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.common.evaluate import write_text_atomic
from engines.common.metrics import dice
from engines.rasalore.postprocess import PostParams, erode_in_plane, grow_in_box, label_components
from engines.rasalore.preprocess import TUMOUR_PX

FILE_NAME = "postprocess.json"
MAP_THRESHOLD = 0.5  # display threshold of the calibrated heatmap: P(voxel is tumour) > 0.5
THRESHOLDS = (0.5, 0.7, 0.9)
ERODE = (0, 3, 6)
KEEP = ((1.0, 0.0), (0.2, 1.0), (0.0, 1.0))  # (keep_fraction, min_ml): largest only / big ones / all ≥ 1 mL
FLAIR_PERCENTILES = (0.0, 85.0, 88.0, 90.0, 92.0, 94.0)
#: FLAIR refinements tried: (brain percentile, region growing in the box); (0, False) = none
FLAIR_OPTIONS = tuple((q, False) for q in FLAIR_PERCENTILES) + ((0.0, True),)


@dataclass(frozen=True)
class SliceCalibration:
    """Platt scaling of the slice logit: ``p = σ(a · z + b)`` (identity for ``a = 1, b = 0``)."""

    a: float = 1.0
    b: float = 0.0

    def prob(self, logit: np.ndarray | float) -> np.ndarray:
        """Calibrated probability of the logit(s) ``z`` (NaN stays NaN)."""
        z = self.a * np.asarray(logit, dtype=np.float64) + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def slice_labels(wt: np.ndarray) -> np.ndarray:
    """Per axial slice of a whole-tumour label ``[Z, H, W]``: 1 (> 200 px), 0 (none), NaN (1–200 px, unused)."""
    c = wt.reshape(wt.shape[0], -1).sum(1)
    return np.where(c > TUMOUR_PX, 1.0, np.where(c == 0, 0.0, np.nan))


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> SliceCalibration:
    """Platt scaling fitted by L-BFGS on the finite (logit, label) pairs (labels 0/1, NaN ignored)."""
    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    keep = np.isfinite(z) & np.isfinite(y)
    zt, yt = torch.as_tensor(z[keep]), torch.as_tensor(y[keep])
    a = torch.ones((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * zt + b, yt)
        loss.backward()
        return loss

    opt.step(nll)
    return SliceCalibration(float(a.item()), float(b.item()))


@dataclass
class Case:
    """One validation volume: the raw network outputs and its label (arrays ``[Z, H, W]``)."""

    name: str
    modality: str  # "flair" or "t1c"
    prob: np.ndarray
    brain: np.ndarray
    vol01: np.ndarray
    wt: np.ndarray
    voxel_ml: float


def _grid_dice(case: Case, flair_options: tuple[tuple[float, bool], ...]) -> dict[PostParams, float]:
    """Dice of every grid point on one case (components labelled once per threshold/erosion/percentile)."""
    out: dict[PostParams, float] = {}
    for t, e in itertools.product(THRESHOLDS, ERODE):
        base = (case.prob > t) & erode_in_plane(case.brain, e)
        for q, grow in flair_options:
            m = base & (case.vol01 > np.percentile(case.vol01[case.brain], q)) if q > 0 else base
            labels, sizes = label_components(m)
            for kf, mm in KEEP:
                if sizes.size:
                    keep = (sizes >= kf * sizes.max()) & (sizes * case.voxel_ml >= mm)
                    keep[int(np.argmax(sizes))] = True
                    mk = np.concatenate([[False], keep])[labels]
                else:
                    mk = m
                if grow:
                    mk = grow_in_box(mk, case.vol01, case.brain)
                out[PostParams(t, e, kf, mm, q, grow)] = dice(mk, case.wt)
    return out


def choose_params(cases: list[Case]) -> tuple[PostParams, PostParams, dict[str, float]]:
    """``(any-sequence params, FLAIR params, their validation Dice)``: grid maxima of the per-volume Dice (mean
    over the cases for the first; FLAIR cases only, with the intensity refinement allowed, for the second)."""
    any_seq = [_grid_dice(c, ((0.0, False),)) for c in cases]
    flair = [_grid_dice(c, FLAIR_OPTIONS) for c in cases if c.modality == "flair"]
    mean_any = {p: float(np.mean([g[p] for g in any_seq])) for p in any_seq[0]}
    mean_flair = {p: float(np.mean([g[p] for g in flair])) for p in flair[0]} if flair else mean_any
    best_any = max(mean_any, key=lambda p: mean_any[p])  # first maximum in grid order = the simplest
    best_flair = max(mean_flair, key=lambda p: mean_flair[p])
    return best_any, best_flair, {"any_sequence_mean_dice": round(mean_any[best_any], 4),
                                  "flair_dice": round(mean_flair[best_flair], 4)}


def act_logit(act: np.ndarray) -> np.ndarray:
    """Logit of point activations in (0, 1) (clipped to 1e-6 from either end)."""
    a = np.clip(np.asarray(act, np.float64), 1e-6, 1 - 1e-6)
    return np.log(a / (1 - a))


def fit_map(acts: list[np.ndarray], cases: list[Case], step: int = 5) -> tuple[SliceCalibration, dict[str, float]]:
    """Voxel-level Platt scaling of the point-activation map against the whole-tumour label (every ``step``-th
    brain voxel of the cases). The display threshold is the Bayes point 0.5 (a voxel is drawn when tumour is
    more likely than not); the Dice of ``map > 0.5`` and the best Dice over thresholds 0.05–0.95 (with its
    threshold) are returned for the record."""
    z = np.concatenate([act_logit(a[c.brain][::step]) for a, c in zip(acts, cases, strict=True)])
    y = np.concatenate([c.wt[c.brain][::step].astype(np.float64) for c in cases])
    cal = fit_platt(z, y)
    maps = [cal.prob(act_logit(a)) * c.brain for a, c in zip(acts, cases, strict=True)]
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scores = [float(np.mean([dice(m > t, c.wt) for m, c in zip(maps, cases, strict=True)])) for t in grid]
    best = int(np.argmax(scores))
    info = {"threshold": MAP_THRESHOLD, "validation_dice_at_threshold": scores[int(np.argmin(np.abs(grid - 0.5)))],
            "validation_best_dice": scores[best], "validation_best_threshold": float(grid[best]),
            "validation_max": float(max(float(m.max()) for m in maps))}
    return cal, {k: round(v, 4) for k, v in info.items()}


def load_calibration(weights: Path) -> dict | None:
    """``postprocess.json`` beside ``weights`` as a dict, or None when there is none."""
    p = Path(weights).with_name(FILE_NAME)
    return json.loads(p.read_text()) if p.exists() else None


def calibrate(weights: Path, data: Path) -> dict[str, object]:
    """Run the network on the validation volumes and return what ``postprocess.json`` holds."""
    from engines.rasalore.model import for_inference
    from engines.rasalore.pipeline import segment
    from engines.rasalore.weights_io import load_stage2
    from engines.weights import sha256_file

    model = for_inference(load_stage2(weights))
    with np.load(data / "gt_val.npz") as f:
        gts = {k[3:]: f[k].astype(bool) for k in f.files if k.startswith("wt_")}
    cases, logits, labels, acts = [], [], [], []
    with np.load(data / "volumes_val.npz") as f:
        voxel_ml = float(np.prod(f["spacing"])) / 1000.0
        for key in sorted(k for k in f.files if "__" in k):
            patient, modality = key.split("__")
            seg = segment(model, f[key])
            cases.append(Case(key, modality, seg.prob, seg.brain, seg.vol01, gts[patient], voxel_ml))
            acts.append(seg.act)
            logits.append(seg.slice_logit)
            labels.append(slice_labels(gts[patient]))
    best_any, best_flair, val = choose_params(cases)
    z, y = np.concatenate(logits), np.concatenate(labels)
    cal = fit_platt(z, y)
    map_cal, map_info = fit_map(acts, cases)
    return {"weights_sha256": sha256_file(weights), "post": best_any.to_dict(), "post_flair": best_flair.to_dict(),
            "slice_calibration": {"a": cal.a, "b": cal.b, "temperature": 1.0 / cal.a if cal.a else None},
            "map_calibration": {"a": map_cal.a, "b": map_cal.b, **map_info,
                                "what": "point activation → P(voxel is whole tumour), Platt on the validation "
                                        "patient's brain voxels; display threshold 0.5 (Bayes point)"},
            "validation_dice": val, "chosen_on": sorted(c.name for c in cases),
            "grid": {"threshold": THRESHOLDS, "erode_px": ERODE, "keep_fraction_min_ml": KEEP,
                     "flair_refinement": FLAIR_OPTIONS},
            "note": "chosen on the validation patient's whole-tumour label (never read by training); the test "
                    "patient was not used"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Choose rasalore's post-processing and calibrate it on validation.")
    ap.add_argument("--weights", type=Path, default=Path("resources/weights/rasalore/model.safetensors"))
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = calibrate(args.weights, args.data)
    out = args.weights.with_name(FILE_NAME)
    write_text_atomic(out, json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
