"""Turn ``../shared/data/dermoscopy`` into arrays that training and evaluation read with numpy only.

Usage::

    python -m engines.dermae.prepare --data ../shared/data/dermoscopy --out data_prepared/dermae --sizes 64

Writes ``<out>/<size>/{train,test}.npz`` with

* ``images`` uint8 ``[N, S, S, 3]``: RGB photo squashed to ``S × S`` (:func:`data.resize_rgb`);
* ``labels`` int64 ``[N]``: 0 melanoma, 1 seborrheic keratosis, 2 nevus (:data:`data.CLASSES`);
* ``masks`` uint8 ``[N, S, S]``: lesion mask (0/1), for the saliency comparison only;
* ``ids``: str ``[N]`` image ids.

The split (by image id, stratified by class, 25 % of each class held out, seed 20170001; ISIC_0000224 and
ISIC_0014791 — one lesion under two ids — kept on the same side) is written to
``engines/dermae/split.json`` the first time and read from there afterwards, so it stays fixed.
Reading JPEG/PNG uses Pillow (this module only).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from engines.common.prepare import prepare_parser
from engines.dermae.data import CLASSES, resize_mask, resize_rgb, split_units

SPLIT_FILE = Path(__file__).with_name("split.json")
SEED = 20170001
TEST_FRACTION = 0.25
SAME_LESION = [("ISIC_0000224", "ISIC_0014791")]


def read_rows(data: Path) -> list[dict[str, str]]:
    """labels.csv rows whose image exists, in file order."""
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if (data / "images" / f"{r['image_id']}.jpg").exists()]


def read_rgb(path: Path) -> np.ndarray:
    """An image file as ``uint8 [H, W, 3]``."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """A mask PNG as bool ``[H, W]`` (> 127)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def make_split(rows: list[dict[str, str]]) -> dict[str, object]:
    """The fixed split (see module docstring)."""
    ids = [r["image_id"] for r in rows]
    labels = np.array([CLASSES.index(r["diagnosis"]) for r in rows])
    test = split_units(ids, labels, SAME_LESION, TEST_FRACTION, SEED)
    return {"seed": SEED, "test_fraction": TEST_FRACTION,
            "method": "by image id, stratified by diagnosis, same-lesion pairs joined to one unit",
            "same_lesion_pairs": SAME_LESION,
            "train": [i for i, t in zip(ids, test, strict=True) if not t],
            "test": [i for i, t in zip(ids, test, strict=True) if t]}


def prepare(data: Path, out: Path, sizes: list[int], split_file: Path = SPLIT_FILE,
            limit: int | None = None) -> dict[str, object]:
    """Write ``out/<size>/{train,test}.npz`` for every size; return the split used.

    Args:
        limit: keep only the first ``limit`` images of each side (quick tests).
    """
    rows = read_rows(data)
    if split_file.exists():
        split = json.loads(split_file.read_text())
    else:
        split = make_split(rows)
        split_file.write_text(json.dumps(split, indent=1) + "\n")
    index = {r["image_id"]: r for r in rows}
    for size in sizes:
        (out / str(size)).mkdir(parents=True, exist_ok=True)
        for side in ("train", "test"):
            names = [n for n in split[side] if n in index][:limit]  # type: ignore[index]
            imgs, labs, masks = [], [], []
            for name in names:
                imgs.append(resize_rgb(read_rgb(data / "images" / f"{name}.jpg"), size))
                labs.append(CLASSES.index(index[name]["diagnosis"]))
                mp = data / "masks" / f"{name}_segmentation.png"
                masks.append(resize_mask(read_mask(mp), size) if mp.exists() else np.zeros((size, size), np.uint8))
            np.savez_compressed(out / str(size) / f"{side}.npz", images=np.stack(imgs),
                                labels=np.array(labs, dtype=np.int64), masks=np.stack(masks),
                                ids=np.array(names), class_names=np.array(CLASSES))
    return split


def main(argv: list[str] | None = None) -> None:
    ap = prepare_parser("dermae", __doc__.splitlines()[0], "dermoscopy")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--split-file", type=Path, default=SPLIT_FILE)
    args = ap.parse_args(argv)
    prepare(args.data, args.out, args.sizes, args.split_file)
    for side in ("train", "test"):
        d = np.load(args.out / str(args.sizes[0]) / f"{side}.npz")
        counts = np.bincount(d["labels"], minlength=len(CLASSES))
        print(f"{side}: {len(d['labels'])} images — " + ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts, strict=True)))
    print(f"split in {args.split_file}; arrays in {args.out}")


if __name__ == "__main__":
    main()
