"""Turn ``../shared/data/cxr`` into arrays that training and evaluation read with numpy only.

Usage::

    python -m engines.multires_cxr.prepare --data ../shared/data/cxr --out data_prepared/multires_cxr --sizes 256

Writes ``<out>/<size>/{train,test}.npz`` with

* ``images`` uint8 ``[N, S, S]``: grey radiograph, robustly normalised (percentiles) to [0, 255], squashed
  to ``S × S`` (see :mod:`engines.multires_cxr.data`);
* ``labels`` float32 ``[N, 9]``: 1 / 0 / -1 (unknown) for the candidate findings the data supports
  (:data:`engines.common.cxr_findings.CANDIDATES`, in ``label_names``), from :func:`cxr_findings.finding_labels`;
* ``nih_labels`` float32 ``[N, 14]``: the rule-based NIH mapping (:func:`cxr_labels.map_labels`), for reference;
* ``lung_field`` uint8 ``[N, S/4, S/4]``: the lung fields predicted by :func:`engines.common.lung_fields.lung_field_mask`
  on the full image, area-resized to the saliency grid (≥ 0.5), the instances LSE-LBA pools over;
* ``lung_mask`` uint8 ``[N, S, S]`` and ``has_mask`` bool ``[N]``: the lungVAE lung masks (74 images);
* ``box_mask`` uint8 ``[N, S, S]`` and ``has_box`` bool ``[N]``: union of the COCO lung boxes (36 images);
* ``filenames``, ``patientids``: str ``[N]``.

The split (by patient, near-duplicate images joined to one unit, stratified by "has a negative label", seed
20180321, 30 % held out) is written to ``engines/multires_cxr/split.json`` the first time and read from there
afterwards, so it stays fixed. Reading PNGs uses Pillow (this module only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.common.cxr import SPLIT_FILE, box_mask, load_rows, read_boxes, read_png
from engines.common.cxr_findings import CANDIDATES, counts, finding_labels
from engines.common.cxr_labels import map_labels
from engines.common.lung_fields import lung_field_mask
from engines.common.prepare import prepare_parser
from engines.multires_cxr.data import (
    duplicate_groups,
    merge_groups,
    normalise,
    resize_mask,
    resize_square,
    split_groups,
    thumbnail,
)

SEED = 20180321
TEST_FRACTION = 0.3


def make_split(data: Path, rows: list[dict[str, str]], images01: list[np.ndarray]) -> dict[str, object]:
    """Compute the patient + de-duplicated split (see module docstring)."""
    thumbs = np.stack([thumbnail(im) for im in images01])
    dups = duplicate_groups(thumbs)
    units = merge_groups([r["patientid"] for r in rows], dups)
    labels = np.stack([map_labels(r["finding"], r["clinical_notes"]) for r in rows])
    strata = (labels == 0).any(axis=1).astype(int)
    test = split_groups(units, strata, TEST_FRACTION, SEED)
    n_dup = int(len(dups) - len(np.unique(dups)))
    return {
        "seed": SEED,
        "test_fraction": TEST_FRACTION,
        "method": "units = patients joined with near-duplicate images (64x64 detail-thumbnail correlation > 0.9); "
                  "stratified by 'has a negative label'; whole units to one side",
        "near_duplicate_images_joined": n_dup,
        "train": [r["filename"] for r, t in zip(rows, test, strict=True) if not t],
        "test": [r["filename"] for r, t in zip(rows, test, strict=True) if t],
    }


def prepare(data: Path, out: Path, sizes: list[int], split_file: Path = SPLIT_FILE,
            limit: int | None = None) -> dict[str, object]:
    """Write ``out/<size>/{train,test}.npz`` for every size; return the split used.

    Args:
        limit: keep only the first ``limit`` images of each side (for quick tests).
    """
    rows = load_rows(data)
    cache: dict[str, np.ndarray] = {}

    def image01(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = normalise(read_png(data / "images" / name))
        return cache[name]

    if split_file.exists():
        split = json.loads(split_file.read_text())
    else:
        split = make_split(data, rows, [image01(r["filename"]) for r in rows])
        split_file.write_text(json.dumps(split, indent=1) + "\n")
    boxes = read_boxes(data)
    index = {r["filename"]: i for i, r in enumerate(rows)}
    for size in sizes:
        (out / str(size)).mkdir(parents=True, exist_ok=True)
        for side in ("train", "test"):
            names = [n for n in split[side] if n in index][:limit]
            imgs, labs, nih, fields, masks, has_m, bmasks, has_b = [], [], [], [], [], [], [], []
            for name in names:
                r, im = rows[index[name]], image01(name)
                imgs.append(np.round(resize_square(im, size) * 255).clip(0, 255).astype(np.uint8))
                labs.append(finding_labels(r["finding"], r["clinical_notes"]))
                nih.append(map_labels(r["finding"], r["clinical_notes"]))
                fields.append(resize_mask(lung_field_mask(read_png(data / "images" / name)), size // 4))
                mpath = data / "lung_masks" / f"{Path(name).stem}_mask.png"
                if mpath.exists():
                    masks.append(resize_mask(read_png(mpath) > 127, size))
                    has_m.append(True)
                else:
                    masks.append(np.zeros((size, size), np.uint8))
                    has_m.append(False)
                b = boxes.get(Path(name).stem)
                bmasks.append(box_mask(b, size, size) if b else np.zeros((size, size), np.uint8))
                has_b.append(bool(b))
            np.savez_compressed(
                out / str(size) / f"{side}.npz", images=np.stack(imgs), labels=np.stack(labs),
                nih_labels=np.stack(nih), lung_field=np.stack(fields),
                lung_mask=np.stack(masks), has_mask=np.array(has_m), box_mask=np.stack(bmasks),
                has_box=np.array(has_b), filenames=np.array(names),
                patientids=np.array([rows[index[n]]["patientid"] for n in names]),
                label_names=np.array(CANDIDATES))
    return split


def main(argv: list[str] | None = None) -> None:
    ap = prepare_parser("multires_cxr", __doc__.splitlines()[0], "cxr")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--split-file", type=Path, default=SPLIT_FILE)
    args = ap.parse_args(argv)
    split = prepare(args.data, args.out, args.sizes, args.split_file)
    for side in ("train", "test"):
        d = np.load(args.out / str(args.sizes[0]) / f"{side}.npz")
        y = d["labels"]
        print(f"{side}: {len(y)} images, {len(set(d['patientids']))} patient ids, "
              f"{int(d['has_mask'].sum())} lung masks, {int(d['has_box'].sum())} box sets")
        for name, c in counts(y).items():
            print(f"  {name:22s} +{c['pos']:4d} -{c['neg']:4d} ?{c['unknown']:4d}")
    print(f"split: {split['near_duplicate_images_joined']} near-duplicate images joined; written to {args.out}")


if __name__ == "__main__":
    main()
