"""Run the engine on one brain MR file: whole-tumour mask and point-activation map as NIfTI on the input grid.

Usage::

    python -m engines.rasalore.infer FLAIR.nii.gz [--weights W] [--out DIR] [--device cpu]

Reads with ``viewer.io.load_volume`` (NIfTI or DICOM); writes ``<out>/tumour_mask.nii.gz`` (uint8, 1 = whole
tumour), ``<out>/point_activation.nii.gz`` (float32 in [0, 1]) — both with the input's affine — and
``<out>/result.json`` (score, notes, mask volume).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="rasalore inference on one brain MRI file.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("rasalore_out"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from engines.rasalore.engine import RASALoREEngine
    from viewer.io import load_volume
    from viewer.io.nifti_write import write_nifti

    vol = load_volume(args.image)
    res = RASALoREEngine(args.weights).run(vol, device=args.device,
                                           progress=lambda f, m: print(f"[{f:4.0%}] {m}", flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    names = {"mask": "tumour_mask.nii.gz", "saliency": "point_activation.nii.gz"}
    for ov in res.overlays:
        write_nifti(ov.volume, args.out / names[ov.kind])
    info = {"scores": res.scores, "notes": res.notes,
            "tumour_ml": res.overlays[0].volume.metadata.get("tumour_ml")}
    (args.out / "result.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
