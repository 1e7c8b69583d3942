"""Run HLIP on a study: scores to JSON, one similarity map per scan as NIfTI (its own coarse grid and affine).

Usage::

    python -m engines.hlip.infer SCAN [SCAN ...] [--query "glioma"] [--weights W] [--out DIR]

Each SCAN is a NIfTI (or anything ``viewer.io`` reads) of the same study (e.g. FLAIR and T1c of one patient).
Writes ``<out>/scores.json`` and ``<out>/similarity_scan<k>.nii.gz`` (cosine values on the token grid; the
affine maps token centres onto the scan, see :func:`engines.hlip.engine.token_to_voxel_matrix`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from viewer.model.volume import Volume


def write_overlay(vol: Volume, path: Path) -> None:
    """Write an overlay volume ``[k, j, i]`` with its LPS affine as NIfTI (RAS affine)."""
    import nibabel as nib

    from viewer.model.volume import LPS_FROM_RAS

    data = np.transpose(np.asarray(vol.array, np.float32), (2, 1, 0))  # → [i, j, k]
    nib.save(nib.Nifti1Image(data, LPS_FROM_RAS @ vol.affine), str(path))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="HLIP inference on one study.")
    ap.add_argument("scans", type=Path, nargs="+")
    ap.add_argument("--query", default=None)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("hlip_out"))
    ap.add_argument("--modality", default=None, help="override the modality (MR/CT) used for the prompts")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from engines.hlip.engine import HLIPEngine
    from viewer.io import load_volume

    vols = [load_volume(p) for p in args.scans]
    if args.modality:
        for v in vols:
            v.modality = args.modality
    eng = HLIPEngine(args.weights)
    res = eng.run_study(vols, args.query, device=args.device, progress=lambda f, m: print(f"[{f:4.0%}] {m}"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps(res.scores, indent=1, ensure_ascii=False) + "\n")
    for k, ov in enumerate(res.overlays):
        write_overlay(ov.volume, args.out / f"similarity_scan{k}.nii.gz")
    for name, p in sorted(res.scores.items(), key=lambda kv: -kv[1]):
        print(f"{name:40s} {p:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
