"""CPU latency of the multires_cxr engine per 512×512 radiograph (target ≤ 0.3 s, demo config, 2 threads).

Usage: ``python bench/bench_multires_cxr.py [--repeats 20] [--threads 2] [--paper]``

Measures (median and 90th percentile over ``--repeats`` runs after one warm-up):

* ``engine.run`` end to end on a 512² grey radiograph (a real PNG from ../shared/data/cxr resized, or
  synthetic when absent): percentile normalisation, resize to the config's input, forward, overlays;
* the network forward alone at the config's input size and, for reference, at 512²;
* with ``--paper``: the paper config (ResNet-50 layout, untrained) forward at 512², a few runs;
* GPU throughput (images/s, batch 32) when CUDA is available.

Writes ``bench/results/multires_cxr.json``.
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
from engines.multires_cxr.engine import MultiResCXREngine  # noqa: E402
from engines.multires_cxr.model import CONFIGS, MultiResCXR  # noqa: E402
from viewer.model.volume import Volume  # noqa: E402


def radiograph_512() -> tuple[np.ndarray, str]:
    """A 512×512 uint8 grey radiograph and where it came from."""
    data = Path(os.environ.get("LUCENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cxr" / "images"
    png = data / "ARDSSevere.png"
    if png.exists():
        from PIL import Image

        with Image.open(png) as im:
            return np.asarray(im.convert("L").resize((512, 512), Image.BILINEAR)), png.name
    rng = np.random.default_rng(0)
    return (rng.random((512, 512)) * 255).astype(np.uint8), "synthetic noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "multires_cxr.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    img, source = radiograph_512()
    eng = MultiResCXREngine()
    vol = Volume(img, modality="CR", spacing_known=False)
    rows: dict[str, dict[str, float]] = {}
    rows["engine.run (512² in, demo)"] = latency(lambda: eng.run(vol), args.repeats)
    model = eng.load()
    n = model.config.input_size
    with torch.inference_mode():
        x = torch.randn(1, 1, n, n)
        rows[f"forward {n}² (demo)"] = latency(lambda: model(x), args.repeats)
        x512 = torch.randn(1, 1, 512, 512)
        rows["forward 512² (demo widths)"] = latency(lambda: model(x512), args.repeats)
        if args.paper:
            paper = MultiResCXR(CONFIGS["paper"]).eval()
            rows["forward 512² (paper config)"] = latency(lambda: paper(x512), 3)
    gpu = None
    if torch.cuda.is_available():
        m = model.to("cuda").half()
        xb = torch.randn(32, 1, n, n, device="cuda", dtype=torch.half)
        with torch.inference_mode():
            gpu = gpu_throughput(lambda: m(xb), 32, "images")
    print_latency(f"multires_cxr latency, {args.threads} CPU threads, image: {source}", rows)
    target = 0.3
    ok = rows["engine.run (512² in, demo)"]["median_s"] <= target
    print(f"target ≤ {target} s per 512² radiograph (demo): {'met' if ok else 'NOT met'}")
    if gpu:
        print(f"GPU {gpu['device']}: {gpu['images_per_s']:.0f} images/s (batch 32, fp16)")
    write_json(args.out, {**engine_run_info("multires_cxr", args.threads), "image": source, "results": rows,
                          "target_s": target, "target_met": ok, "gpu": gpu})


if __name__ == "__main__":
    main()
