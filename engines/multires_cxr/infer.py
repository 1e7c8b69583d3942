"""Run the engine on one radiograph file: scores to JSON, saliency maps to PNG (+ .npy) files.

Usage::

    python -m engines.multires_cxr.infer IMAGE [--weights W] [--out DIR] [--top-k 3]

Files are read with ``viewer.io.load_volume`` when that reader is available (DICOM CR/DX with MONOCHROME1 and
bit depth handled there), otherwise PNG/JPEG with Pillow (1 mm pixels, modality "OT"). Writes
``<out>/scores.json`` and, per overlay, ``<out>/saliency_<finding>.png`` (grey, the map resized to
the image) and ``.npy`` (the map on its own grid, [0, 1]).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from viewer.model.volume import Volume


def read_volume(path: Path) -> Volume:
    """A 2D radiograph as a :class:`Volume` (viewer.io when present, else Pillow for PNG/JPEG)."""
    try:
        from viewer.io import load_volume  # type: ignore[attr-defined]
    except ImportError:
        load_volume = None
    if load_volume is not None:
        return load_volume(path)
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.mode in ("RGB", "RGBA", "P")
        arr = np.asarray(im.convert("RGB") if rgb else im)
    return Volume(arr, modality="OT", spacing_known=False, rgb=rgb)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="multires_cxr inference on one file.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("multires_cxr_out"))
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from engines.multires_cxr.engine import MultiResCXREngine

    vol = read_volume(args.image)
    eng = MultiResCXREngine(args.weights, top_k=args.top_k)
    res = eng.run(vol, device=args.device, progress=lambda f, m: print(f"[{f:4.0%}] {m}"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps(res.scores, indent=1) + "\n")
    from PIL import Image

    h, w = vol.shape3d[1:]
    for ov in res.overlays:
        finding = ov.volume.metadata["finding"]
        np.save(args.out / f"saliency_{finding}.npy", ov.volume.array)
        img = Image.fromarray((ov.volume.array * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
        img.save(args.out / f"saliency_{finding}.png")
    for name, p in sorted(res.scores.items(), key=lambda kv: -kv[1]):
        print(f"{name:20s} {p:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
