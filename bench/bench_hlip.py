"""CPU latency of the HLIP engine on a real two-scan BRATS study (FLAIR + T1c, 240×240×155 each).

Usage: ``python bench/bench_hlip.py [--repeats 5] [--threads 2] [--paper]``

Measures (median / p90):

* sentence-encoder load and shipped-weights load (once per process);
* ``run_study`` on a NEW two-scan study (preprocessing + patch embedding + 6 hierarchical blocks + text;
  target ≤ 5 s on the 2-core CPU) — the arrays get a tiny perturbation per repeat so the cache misses;
* ``run_study`` with a NEW query on the same study (image side cached: text encoding + cosine map only;
  target ≤ 1 s);
* one-scan ``run`` (what the app does for the open volume);
* ``run`` on a 2D head-CT PNG slice (a one-slice study: read, mask, default prompts, map on the slice's pixels);
* the vision tower alone (demo config; with ``--paper`` the paper ViT-B, 2 scans of 48×224×224, random weights);
* GPU throughput of the vision tower when CUDA is available.

Writes ``bench/results/hlip.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import engine_run_info, gpu_throughput, latency, once, print_latency, stats, write_json  # noqa: E402
from engines.common.text import load_text_encoder  # noqa: E402
from engines.hlip.engine import HLIPEngine  # noqa: E402
from viewer.model.volume import Volume  # noqa: E402

QUERIES = ("glioma", "enhancing tumour in the left hemisphere", "intracranial hemorrhage", "oedema",
           "acute stroke", "no significant abnormalities", "large mass", "necrosis")


def load_study() -> tuple[list[Volume], str]:
    from viewer.io.nifti import read_nifti

    d = Path(os.environ.get("LUCENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "brain_mri" / "brats_2013_pat0002_1"
    if (d / "Flair_subtrMeanDivStd.nii.gz").exists():
        vols = [read_nifti(d / "Flair_subtrMeanDivStd.nii.gz"), read_nifti(d / "T1c_subtrMeanDivStd.nii.gz")]
        return vols, f"{d.name} FLAIR + T1c"
    rng = np.random.default_rng(0)
    return [Volume(rng.normal(size=(155, 240, 240)).astype(np.float32), modality="MR") for _ in range(2)], "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hlip.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vols, source = load_study()
    rows: dict[str, dict[str, float]] = {}
    t = time.perf_counter()
    load_text_encoder()
    rows["sentence encoder load (once)"] = once(time.perf_counter() - t)
    eng = HLIPEngine()
    t = time.perf_counter()
    eng.load()
    rows["weights load (once)"] = once(time.perf_counter() - t)
    eng.run_study(vols, "warm-up")
    firsts, cached, single, img_side, text_side = [], [], [], [], []
    for r in range(args.repeats):
        study = []
        for v in vols:
            a = v.array.copy()
            a.flat[r] += 1e-3 * (r + 1)  # a different study for the cache
            study.append(Volume(a, affine=v.affine, modality=v.modality))
        t = time.perf_counter()
        eng.run_study(study, f"{QUERIES[r % len(QUERIES)]} #{r}")
        firsts.append(time.perf_counter() - t)
        img_side.append(eng.last_timing["image_s"])
        for q in QUERIES[:3]:
            t = time.perf_counter()
            eng.run_study(study, f"{q} (repeat {r})")  # a new text: no text-cache hit either
            cached.append(time.perf_counter() - t)
            text_side.append(eng.last_timing["text_s"])
        t = time.perf_counter()
        eng.run(study[0])
        single.append(time.perf_counter() - t)
    rows["run_study: 2 scans, new study (first query)"] = stats(firsts)
    rows["  of which image side"] = stats(img_side)
    rows["run_study: new query, cached study"] = stats(cached)
    rows["  of which text side"] = stats(text_side)
    rows["run: 1 scan, new volume, default prompts"] = stats(single)
    png = Path(os.environ.get("LUCENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "head_ct" / "images" / "000.png"
    if png.exists():
        from viewer.io import load_volume

        calls = iter(range(10**6))

        def slice_run() -> None:
            v = load_volume(png)
            a = v.array.copy()
            a.flat[next(calls)] ^= 1  # a different slice for the cache
            eng.run(Volume(a, affine=v.affine, modality=v.modality, rgb=v.rgb))

        rows["run: 2D head-CT PNG slice (read + run)"] = latency(slice_run, args.repeats)
    model = eng.load()
    cfg = model.config
    with torch.inference_mode():
        x = torch.randn(1, 2, 1, *cfg.input_size)
        rows[f"vision tower, 2 scans {'×'.join(map(str, cfg.input_size))} (demo)"] = latency(
            lambda: model.encode_image(x), args.repeats)
        if args.paper:
            from engines.hlip.configs import PAPER_DEFAULT, get_config
            from engines.hlip.model import HLIP

            paper = HLIP(get_config(PAPER_DEFAULT)).eval()
            xp = torch.randn(1, 2, 1, 48, 224, 224)
            rows["vision tower, 2 scans 48×224×224 (paper ViT-B, h3)"] = latency(lambda: paper.encode_image(xp), 2)
            del paper
    gpu = None
    if torch.cuda.is_available():
        m = model.to("cuda").half()
        xb = torch.randn(32, 2, 1, *cfg.input_size, device="cuda", dtype=torch.half)
        with torch.inference_mode():
            gpu = gpu_throughput(lambda: m.encode_image(xb), 32, "studies", runs=10)
        model.to("cpu").float()
    print_latency(f"hlip latency, {args.threads} CPU threads, study: {source}", rows)
    ok_first = rows["run_study: 2 scans, new study (first query)"]["median_s"] <= 5.0
    ok_cached = rows["run_study: new query, cached study"]["median_s"] <= 1.0
    print(f"target ≤ 5 s per new two-scan study: {'met' if ok_first else 'NOT met'}; "
          f"≤ 1 s per new query on a cached study: {'met' if ok_cached else 'NOT met'}")
    if gpu:
        print(f"GPU {gpu['device']}: {gpu['studies_per_s']:.0f} two-scan studies/s (vision tower, fp16)")
    write_json(args.out, {**engine_run_info("hlip", args.threads), "study": source, "results": rows,
                          "targets": {"first_study_s": 5.0, "cached_query_s": 1.0}, "first_met": ok_first,
                          "cached_met": ok_cached, "gpu": gpu, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
