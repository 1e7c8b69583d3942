"""Run the engine on one radiograph file: scores to JSON, saliency maps to PNG (+ .npy) files.

Usage::

    python -m engines.multires_cxr.infer IMAGE [--weights W] [--out DIR] [--top-k 3]

Files are read with ``viewer.io.load_volume`` (DICOM CR/DX with MONOCHROME1 and bit depth, or PNG/JPEG). Writes
``<out>/scores.json`` and, per overlay, ``<out>/saliency_<finding>.png`` (grey, the map resized to
the image) and ``.npy`` (the map on its own grid, [0, 1]).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="multires_cxr inference on one file.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("multires_cxr_out"))
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from engines.multires_cxr.engine import MultiResCXREngine
    from viewer.io import load_volume

    vol = load_volume(args.image)
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
