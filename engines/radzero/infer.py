"""Run RadZero on one radiograph for one or more typed findings: similarity maps to PNG/.npy, scores to JSON.

Usage::

    python -m engines.radzero.infer IMAGE --query "consolidation" --query "pleural effusion" [--weights W] [--out DIR]

Files are read with :func:`viewer.io.load_volume` (DICOM, NIfTI or PNG/JPEG).
Image features are computed once and reused for every query (the engine's per-image cache). Writes, per query,
``<out>/similarity_<n>.npy`` (the map on its own grid, sigmoid(cos/τ) in (0, 1)) and ``similarity_<n>.png``
(grey, resized to the image), plus ``<out>/scores.json`` (query → zero-shot probability vs its negation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="RadZero inference on one file.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--query", action="append", default=None, help="a finding; repeat for several (default: all classes)")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("radzero_out"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from PIL import Image

    from engines.radzero.engine import RadZeroEngine
    from viewer.io import load_volume

    vol = load_volume(args.image)
    eng = RadZeroEngine(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}
    h, w = vol.shape3d[1:]
    for n, q in enumerate(args.query or [None]):
        res = eng.run(vol, q, device=args.device, progress=lambda f, m: print(f"[{f:4.0%}] {m}"))
        scores.update(res.scores)
        ov = res.overlays[0]
        np.save(args.out / f"similarity_{n}.npy", ov.volume.array)
        Image.fromarray((ov.volume.array * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR).save(
            args.out / f"similarity_{n}.png")
        print(f"{ov.name}: map {ov.volume.array.shape}, max {ov.volume.array.max():.3f}; {res.notes[0]}")
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    for name, p in sorted(scores.items(), key=lambda kv: -kv[1]):
        print(f"{name:30s} {p:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
