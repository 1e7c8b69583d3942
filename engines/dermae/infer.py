"""DERMAE inference on one dermoscopy photo: class probabilities + Grad-CAM (PNG/NPY) out.

Usage::

    python -m engines.dermae.infer ../shared/data/dermoscopy/images/ISIC_0000009.jpg --out dermae_out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="DERMAE inference on one photo.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("dermae_out"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from engines.dermae.engine import DermaeEngine
    from viewer.io import load_volume

    vol = load_volume(args.image)
    res = DermaeEngine(args.weights).run(vol, device=args.device, progress=lambda f, m: print(f"[{f:4.0%}] {m}"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps(res.scores, indent=1) + "\n")
    from PIL import Image

    h, w = vol.shape3d[1:]
    for ov in res.overlays:
        stem = "gradcam" if ov.kind == "saliency" else "lesion_mask"
        np.save(args.out / f"{stem}.npy", ov.volume.array)
        arr = ov.volume.array.astype(np.float32)
        img = Image.fromarray((arr / max(float(arr.max()), 1e-6) * 255).astype(np.uint8))
        img.resize((w, h), Image.BILINEAR).save(args.out / f"{stem}.png")
    for name, p in sorted(res.scores.items(), key=lambda kv: -kv[1]):
        print(f"{name:22s} {p:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
