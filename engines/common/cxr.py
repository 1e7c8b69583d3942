"""The chest-radiograph data set (``../shared/data/cxr``) as two engines read it (multires_cxr, radzero).

Rows of ``metadata.csv`` whose image exists, PNG reading (Pillow), the COCO lung boxes, and the patient-level
split file both engines share (``engines/multires_cxr/split.json``, written once by
``python -m engines.multires_cxr.prepare``). The rule-based 14-label mapper is :mod:`engines.common.cxr_labels`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from engines.common.image import to_grey

SPLIT_FILE = Path(__file__).resolve().parents[1] / "multires_cxr" / "split.json"


def read_png(path: Path) -> np.ndarray:
    """A PNG/JPEG as float32 grey ``[H, W]`` (Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA", "P", "LA"):
            return to_grey(np.asarray(im.convert("RGB")), rgb=True)
        return np.asarray(im).astype(np.float32)


def read_boxes(data: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Lung boxes by PNG stem, as fractions (x0, y0, x1, y1) of the source image's width/height."""
    path = data / "lung_boxes.json"
    if not path.exists():
        return {}
    coco = json.loads(path.read_text())
    images = {im["id"]: im for im in coco["images"]}
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for ann in coco["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        W, H = float(im["width"]), float(im["height"])
        out.setdefault(Path(im["file_name"]).stem, []).append((x / W, y / H, (x + w) / W, (y + h) / H))
    return out


def box_mask(boxes: list[tuple[float, float, float, float]], height: int, width: int) -> np.ndarray:
    """Union of fractional boxes rasterised on ``[height, width]`` (uint8 0/1; pixel centres inside)."""
    m = np.zeros((height, width), dtype=np.uint8)
    yc = (np.arange(height) + 0.5) / height
    xc = (np.arange(width) + 0.5) / width
    for x0, y0, x1, y1 in boxes:
        m[np.ix_((yc >= y0) & (yc <= y1), (xc >= x0) & (xc <= x1))] = 1
    return m


def load_rows(data: Path) -> list[dict[str, str]]:
    """metadata.csv rows whose image exists, in file order."""
    with open(data / "metadata.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if (data / "images" / r["filename"]).exists()]
