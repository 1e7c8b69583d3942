"""CPU latency of the DERMAE engine per dermoscopy photo (student target ≤ 50 ms/image on this 2-core CPU).

Usage: ``python bench/bench_dermae.py [--repeats 30] [--threads 2] [--paper]``

Measures (median and 90th percentile over ``--repeats`` runs after one warm-up):

* ``engine.run`` end to end on a 256×256 RGB dermoscopy photo (a real JPEG from ../shared/data/dermoscopy, or
  synthetic when absent): checks, resize to 64², student forward + Grad-CAM backward, overlays;
* the student forward alone and the teacher (ViT) forward alone, one 64² image; their parameter counts;
* with ``--paper``: the paper-scale ViT-Huge/14 teacher (untrained) forward at 224², a few runs;
* GPU throughput (images/s, batch 64) of the student when CUDA is available.

Writes ``bench/results/dermae.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import engine_run_info, gpu_throughput, latency, print_latency, write_json  # noqa: E402
from engines.dermae.engine import DEFAULT_WEIGHTS, DermaeEngine  # noqa: E402
from engines.dermae.model import CONFIGS, ViTClassifier, count_params  # noqa: E402
from engines.dermae.weights_io import load_model  # noqa: E402
from viewer.model.volume import Volume  # noqa: E402

TARGET_S = 0.050


def photo() -> tuple[np.ndarray, str]:
    """A 256×256 RGB uint8 dermoscopy photo and where it came from."""
    d = Path(os.environ.get("LUCENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "dermoscopy" / "images"
    files = sorted(d.glob("*.jpg")) if d.is_dir() else []
    if files:
        from PIL import Image

        with Image.open(files[0]) as im:
            return np.asarray(im.convert("RGB")), files[0].name
    rng = np.random.default_rng(0)
    return (rng.random((256, 256, 3)) * 255).astype(np.uint8), "synthetic noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dermae.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    img, source = photo()
    eng = DermaeEngine()
    vol = Volume(img, modality="XC", spacing_known=False, rgb=True)
    rows: dict[str, dict[str, float]] = {}
    rows["engine.run (256² RGB in, student + Grad-CAM)"] = latency(lambda: eng.run(vol), args.repeats)
    student = eng.load()
    n = int(student.image_size)
    params = {"student": count_params(student)}
    teacher_path = DEFAULT_WEIGHTS.with_name("teacher.safetensors")
    with torch.inference_mode():
        x = torch.randn(1, 3, n, n)
        rows[f"student forward {n}²"] = latency(lambda: student(x), args.repeats)
        if teacher_path.exists():
            teacher = load_model(teacher_path, "teacher")
            params["teacher"] = count_params(teacher)
            nt = round(teacher.patch_embed.num_patches ** 0.5) * teacher.patch_embed.patch_size
            xt = torch.randn(1, 3, nt, nt)  # the teacher runs at its own size (64 px for the shipped one)
            rows[f"teacher (ViT) forward {nt}²"] = latency(lambda: teacher(xt), args.repeats)
        if args.paper:
            paper = ViTClassifier(CONFIGS["paper"]).eval()
            params["teacher_paper_config"] = count_params(paper)
            x224 = torch.randn(1, 3, 224, 224)
            rows["teacher forward 224² (paper ViT-H/14, untrained)"] = latency(lambda: paper(x224), 3)
    gpu = None
    if torch.cuda.is_available():
        m = student.to("cuda").half()
        xb = torch.randn(64, 3, n, n, device="cuda", dtype=torch.half)
        with torch.inference_mode():
            gpu = gpu_throughput(lambda: m(xb), 64, "images")
    print_latency(f"dermae latency, {args.threads} CPU threads, image: {source}; params: {params}", rows, "ms")
    key = "engine.run (256² RGB in, student + Grad-CAM)"
    ok = rows[key]["median_s"] <= TARGET_S
    print(f"target ≤ {TARGET_S * 1e3:.0f} ms per photo (student, end to end): {'met' if ok else 'NOT met'}")
    if gpu:
        print(f"GPU {gpu['device']}: {gpu['images_per_s']:.0f} images/s (batch 64, fp16)")
    write_json(args.out, {**engine_run_info("dermae", args.threads), "image": source, "params": params,
                          "results": rows, "target_s": TARGET_S, "target_met": ok, "gpu": gpu})


if __name__ == "__main__":
    main()
