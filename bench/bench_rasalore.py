"""CPU latency of the rasalore engine per slice and per 155-slice 240×240 brain MR volume (target ≤ 5 s).

Usage: ``python bench/bench_rasalore.py [--repeats 3] [--threads 2] [--paper]``

Measures (median / p90 over ``--repeats`` runs after one warm-up):

* ``engine.run`` end to end on a real 240×240×155 FLAIR (../shared/data/brain_mri, BRATS 2013 pat0001 — the
  validation patient; synthetic when absent): brain mask, normalisation, per-slice crop + network + paste-back,
  overlays. Divided by the number of brain slices it ran on → per-slice latency;
* the network forward alone on one 128² slice (demo), and with ``--paper`` the paper config (untrained);
* GPU throughput (slices/s, batch 64, fp32) when CUDA is available.

Writes ``bench/results/rasalore.json``. Numbers depend on what else the machine runs (the load average before
and after is recorded, and printed: on a shared 2-core machine a load above 2 means the run did not have the
cores to itself); no timed assertions.
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
from engines.rasalore.engine import RASALoREEngine  # noqa: E402
from engines.rasalore.model import CONFIGS, RASALoRE  # noqa: E402
from viewer.model.volume import Volume  # noqa: E402


def flair_volume() -> tuple[Volume, str]:
    data = Path(os.environ.get("LUCENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "brain_mri"
    f = data / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"
    if f.exists():
        from viewer.io import load_volume

        return load_volume(f), "BRATS 2013 pat0001 FLAIR"
    rng = np.random.default_rng(0)
    a = np.zeros((155, 240, 240), np.float32)
    a[20:135, 40:200, 50:190] = rng.random((115, 160, 140))
    return Volume(a, modality="MR"), "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rasalore.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    vol, source = flair_volume()
    eng = RASALoREEngine()
    from engines.rasalore.preprocess import brain_mask, slice_boxes

    n_slices = int((slice_boxes(brain_mask(vol.array))[:, 0] >= 0).sum())
    rows: dict[str, dict[str, float]] = {}
    size = "×".join(map(str, vol.array.shape[::-1]))
    rows[f"engine.run, volume {size}"] = latency(lambda: eng.run(vol), args.repeats)
    per_slice = next(iter(rows.values()))["median_s"] / n_slices
    model = eng.load()
    x = torch.rand(1, 1, 128, 128)
    with torch.inference_mode():
        rows["forward 1 slice 128² (demo)"] = latency(lambda: model(x), 10)
        xb = torch.rand(16, 1, 128, 128)
        rows["forward 16 slices 128² (demo), per slice"] = {
            k: (v / 16 if k != "repeats" else v) for k, v in latency(lambda: model(xb), 3).items()}
        if args.paper:
            paper = RASALoRE(CONFIGS["paper"]).eval()
            rows["forward 1 slice 128² (paper config)"] = latency(lambda: paper(x), 3)
    gpu = None
    if torch.cuda.is_available():
        m = model.to("cuda")
        xg = torch.rand(64, 1, 128, 128, device="cuda")
        with torch.inference_mode():
            gpu = gpu_throughput(lambda: m(xg), 64, "slices", runs=10)
    print_latency(f"rasalore latency, {args.threads} CPU threads, volume: {source} ({n_slices} brain slices run)",
                  rows)
    print(f"engine per brain slice: {per_slice:.4f} s")
    target = 5.0
    ok = next(iter(rows.values()))["median_s"] <= target
    print(f"target ≤ {target} s per 155-slice volume: {'met' if ok else 'NOT met'}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} cores; above {os.cpu_count()} the cores were shared with other jobs)")
    if gpu:
        print(f"GPU {gpu['device']}: {gpu['slices_per_s']:.0f} slices/s (batch 64)")
    write_json(args.out, {**engine_run_info("rasalore", args.threads), "volume": source, "brain_slices": n_slices,
                          "results": rows, "per_slice_s": per_slice, "target_s": target, "target_met": ok,
                          "gpu": gpu, "load_average_before": load_before, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
