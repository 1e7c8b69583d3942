"""Turn ``../shared/data/brain_mri`` (BRATS 2013, 4 patients) into arrays read by train/evaluate with numpy.

Usage::

    python -m engines.rasalore.prepare --data ../shared/data/brain_mri --out data_prepared/rasalore

Volumes are read with ``viewer.io.load_volume`` (the app's reader, so the ``[z, y, x]`` axis order and the
intensities are exactly what the engine sees in the app) and preprocessed by :mod:`engines.rasalore.preprocess`
(brain box crop → 128×128, percentile scaling, gamma 2). Modalities: FLAIR and T1c, each slice a sample.

Writes, per side (``train`` / ``val`` / ``test``):

* ``<out>/<side>.npz`` — what training may read: ``images`` float16 ``[N, 128, 128]`` in [0, 1], ``brain``
  uint8 ``[N, 128, 128]``, ``labels`` int8 ``[N]`` (1 = tumour: > 200 whole-tumour pixels in the 240×240 slice;
  0 = healthy: no tumour pixel; -1 = 1–200 pixels, ambiguous, not used for training), ``patient``,
  ``modality`` str ``[N]``, ``slice_index`` int ``[N]``, ``boxes`` int32 ``[N, 4]``;
* ``<out>/volumes_<side>.npz`` — evaluation only: the raw volumes as the app loads them, float32 ``[Z, H, W]``
  under ``<patient>__<modality>`` (the engine's whole-volume pipeline runs on them), and ``spacing`` (mm along i, j, k);
* ``<out>/gt_<side>.npz`` — evaluation only, never opened by ``train``/``train_ddpt``: ``wt128`` uint8
  ``[N, 128, 128]`` (the crops' whole-tumour masks) and ``wt_<patient>`` uint8 ``[Z, H, W]`` full volumes.

The split (by patient: 2 train, 1 validation, 1 test) is read from ``engines/rasalore/split.json``; without that
file one is drawn (seed :data:`SEED`) and written. Training reads ``train`` and, to pick its checkpoint, the
validation patient's slice labels and stage-1 pseudo-masks (never ``gt_val.npz``); ``test`` is for
:mod:`engines.rasalore.evaluate` only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.common.prepare import prepare_parser
from engines.rasalore.preprocess import (
    SIZE,
    TUMOUR_PX,
    brain_mask,
    crop_masks,
    crop_slices,
    normalise_volume,
    slice_boxes,
)

SPLIT_FILE = Path(__file__).resolve().parent / "split.json"
MODALITIES = {"flair": "Flair_subtrMeanDivStd.nii.gz", "t1c": "T1c_subtrMeanDivStd.nii.gz"}
LABEL_FILE = "OTMultiClass.nii.gz"
SEED = 2026
SIDES = ("train", "val", "test")


def patients(data: Path) -> list[str]:
    """Folders of labelled BRATS 2013 cases under ``data``."""
    return sorted(p.name for p in data.iterdir() if p.is_dir() and (p / LABEL_FILE).exists())


def make_split(data: Path) -> dict[str, object]:
    """The patient split: read ``split.json`` or draw it (seed :data:`SEED`; 1 test, 1 validation) and write it."""
    if SPLIT_FILE.exists():
        return json.loads(SPLIT_FILE.read_text())
    pts = patients(data)
    rng = np.random.default_rng(SEED)
    order = [pts[i] for i in rng.permutation(len(pts))]
    split = {"seed": SEED, "unit": "patient", "test": order[:1], "val": order[1:2], "train": sorted(order[2:]),
             "note": "BRATS 2013 cases of ../shared/data/brain_mri; the test patient is used for evaluation only"}
    SPLIT_FILE.write_text(json.dumps(split, indent=1) + "\n")
    return split


def load_array(path: Path) -> np.ndarray:
    """``[z, y, x]`` array of a NIfTI file as the app reads it."""
    from viewer.io import load_volume

    return np.asarray(load_volume(path).array)


def prepare_side(data: Path, pts: list[str], size: int = SIZE, limit_slices: int | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Arrays of one side (see the module docstring): ``(train-readable, ground truth)``."""
    keys = ("images", "brain", "labels", "patient", "modality", "slice_index", "boxes")
    acc: dict[str, list] = {k: [] for k in keys}
    gt: dict[str, list | np.ndarray] = {"wt128": []}
    for p in pts:
        wt = load_array(data / p / LABEL_FILE) > 0
        gt[f"wt_{p}"] = wt.astype(np.uint8)
        counts = wt.sum((1, 2))
        for mod, fname in MODALITIES.items():
            vol = load_array(data / p / fname)
            brain = brain_mask(vol)
            boxes = slice_boxes(brain)
            if limit_slices is not None:  # keep a few slices around the tumour (tests)
                keep = np.zeros(len(boxes), bool)
                mid = int(np.argmax(counts))
                keep[max(0, mid - limit_slices // 2): mid + limit_slices // 2] = True
                keep[np.nonzero(boxes[:, 0] >= 0)[0][:limit_slices // 2]] = True
                boxes = np.where(keep[:, None], boxes, -1)
            idx = np.nonzero(boxes[:, 0] >= 0)[0]
            acc["images"].append(crop_slices(normalise_volume(vol, brain), boxes, size).astype(np.float16))
            acc["brain"].append(crop_masks(brain, boxes, size))
            gt["wt128"].append(crop_masks(wt, boxes, size))  # type: ignore[union-attr]
            c = counts[idx]
            acc["labels"].append(np.where(c > TUMOUR_PX, 1, np.where(c == 0, 0, -1)).astype(np.int8))
            acc["patient"].append(np.array([p] * len(idx)))
            acc["modality"].append(np.array([mod] * len(idx)))
            acc["slice_index"].append(idx.astype(np.int32))
            acc["boxes"].append(boxes[idx])
    out = {k: np.concatenate(v) for k, v in acc.items()}
    gt["wt128"] = np.concatenate(gt["wt128"])  # type: ignore[arg-type]
    return out, gt  # type: ignore[return-value]


def write_volumes(data: Path, pts: list[str], path: Path) -> None:
    """``volumes_<side>.npz``: every (patient, modality) raw volume and the voxel spacing (see the module docstring)."""
    from viewer.io import load_volume

    arrays: dict[str, np.ndarray] = {}
    for p in pts:
        for mod, fname in MODALITIES.items():
            v = load_volume(data / p / fname)
            arrays[f"{p}__{mod}"] = np.asarray(v.array, dtype=np.float32)
            arrays["spacing"] = np.asarray(v.spacing, dtype=np.float64)
    np.savez_compressed(path, **arrays)


def prepare(data: Path, out: Path, limit_slices: int | None = None) -> dict[str, object]:
    """Write ``<out>/{train,val,test}.npz`` and ``<out>/gt_{train,val,test}.npz``; returns a summary."""
    split = make_split(data)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {"split": split}
    for side in SIDES:
        arrays, gt = prepare_side(data, list(split[side]), limit_slices=limit_slices)  # type: ignore[arg-type]
        np.savez_compressed(out / f"{side}.npz", **arrays)
        np.savez_compressed(out / f"gt_{side}.npz", **gt)
        if limit_slices is None:
            write_volumes(data, list(split[side]), out / f"volumes_{side}.npz")  # type: ignore[arg-type]
        lab = arrays["labels"]
        summary[side] = {"slices": int(len(lab)), "tumour": int((lab == 1).sum()), "healthy": int((lab == 0).sum()),
                         "ambiguous": int((lab == -1).sum())}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = prepare_parser("rasalore", "Prepare BRATS 2013 slices for rasalore.", "brain_mri")
    args = ap.parse_args(argv)
    print(json.dumps(prepare(args.data, args.out), indent=1))


if __name__ == "__main__":
    main()
