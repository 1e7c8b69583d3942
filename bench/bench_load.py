"""Load-speed benchmark: Lucent vs dcm2niix vs SimpleITK (DICOM) and vs nibabel (NIfTI).

Builds, in a temporary folder, the shared 20-slice J2K CT series enlarged to 300 slices (real slices repeated
with shifted ImagePositionPatient, J2K kept) and an uncompressed copy, then times each reader in a fresh
subprocess (wall time of the load call; the median of ``--repeat`` runs, at least 9 for the 0.1 s NIfTI load;
the first run reported as "cold") and records peak RSS (``resource.getrusage(...).ru_maxrss``). dcm2niix is
timed as a whole process writing an uncompressed NIfTI (``-z n``) to a temporary folder. Results: a table on
stdout and bench/results/load.json.

Usage: ``.venv/bin/python bench/bench_load.py [--repeat 3] [--slices 300]`` (SimpleITK: ``pip install -e .[bench]``;
without it that column is left empty)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LUCENT_SHARED_DATA", REPO.parent / "shared" / "data"))
CT = DATA / "dicom" / "ct_series"
FLAIR = DATA / "brain_mri" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"
DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"


# ---- data -------------------------------------------------------------------------------------------
def build_series(out: Path, n: int, uncompressed: bool) -> Path:
    """Write ``n`` slices made from the real CT slices, 2 mm apart, into ``out``; returns ``out``."""
    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out.mkdir(parents=True, exist_ok=True)
    src = [pydicom.dcmread(p) for p in sorted(CT.iterdir())]
    src.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    if uncompressed:
        for ds in src:
            arr = ds.pixel_array.astype(np.uint16)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.PixelData = arr.tobytes()
            ds["PixelData"].VR = "OW"
            ds["PixelData"].is_undefined_length = False
    z0 = float(src[0].ImagePositionPatient[2])
    series_uid = generate_uid()
    for k in range(n):
        ds = src[k % len(src)]
        ds.ImagePositionPatient = [
            ds.ImagePositionPatient[0],
            ds.ImagePositionPatient[1],
            f"{z0 + 2.0 * k:.2f}",
        ]
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(out / f"CT{k:05d}", enforce_file_format=True)
    return out


# ---- children (run in a fresh interpreter) ----------------------------------------------------------
def child(kind: str, path: str, repeat: int) -> None:
    import resource

    times, nbytes = [], 0
    if kind == "lucent":
        sys.path.insert(0, str(REPO))
        from viewer.io import load_volume

        def run():
            return load_volume(path).nbytes
    elif kind == "sitk":
        import SimpleITK as sitk

        def run():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
            img = reader.Execute()
            return sitk.GetArrayViewFromImage(img).nbytes
    elif kind == "nibabel":
        import nibabel as nib
        import numpy as np

        def run():
            return np.asarray(nib.load(path).dataobj).nbytes
    else:
        raise SystemExit(f"unknown child {kind}")
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes = run()
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"times": times, "nbytes": nbytes, "peak_rss": rss, "children_peak_rss": kids}))


def run_child(kind: str, path: Path, repeat: int) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        print(f"  {kind} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_dcm2niix(path: Path, repeat: int) -> dict | None:
    if not Path(DCM2NIIX).exists():
        return None
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [DCM2NIIX, "-z", "n", "-o", out, "-f", "x", str(path)], capture_output=True, check=True
            )
            times.append(time.perf_counter() - t0)
    return {"times": times}


def have_sitk() -> bool:
    return subprocess.run([sys.executable, "-c", "import SimpleITK"], capture_output=True).returncode == 0


# ---- main -------------------------------------------------------------------------------------------
def summarize(res: dict | None) -> dict | None:
    if res is None:
        return None
    t = res["times"]
    res["cold_s"] = t[0]
    res["median_s"] = statistics.median(t[1:] if len(t) > 1 else t)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return
    if not CT.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    sitk_ok = have_sitk()
    results: dict = {
        "cpu_cores": len(os.sched_getaffinity(0)),
        "load_avg_start": os.getloadavg(),
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="lucent_bench_") as tmp:
        t0 = time.perf_counter()
        cases = {
            "CT 20 J2K (shared)": CT,
            f"CT {args.slices} J2K": build_series(Path(tmp) / "j2k", args.slices, uncompressed=False),
            f"CT {args.slices} uncompressed": build_series(Path(tmp) / "raw", args.slices, uncompressed=True),
        }
        print(f"built test series in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for name, path in cases.items():
            print(f"timing {name}…", file=sys.stderr)
            case = {
                "lucent": summarize(run_child("lucent", path, args.repeat)),
                "dcm2niix": summarize(run_dcm2niix(path, args.repeat)),
                "simpleitk": summarize(run_child("sitk", path, args.repeat)) if sitk_ok else None,
            }
            results["cases"][name] = case
        print("timing NIfTI FLAIR…", file=sys.stderr)
        repeat = max(9, 3 * args.repeat)  # a 0.1 s load: more runs to steady the median
        results["cases"]["NIfTI FLAIR 240×240×155 float32"] = {
            "lucent": summarize(run_child("lucent", FLAIR, repeat)),
            "nibabel": summarize(run_child("nibabel", FLAIR, repeat)),
        }
    results["load_avg_end"] = os.getloadavg()
    if not sitk_ok:
        results["note"] = "SimpleITK not importable: skipped (pip install SimpleITK to include it)"
    print_table(results)
    out = REPO / "bench" / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(REPO)}")


def print_table(results: dict) -> None:
    print(
        f"\n{'case':34} {'reader':10} {'cold s':>8} {'median s':>9} {'vs Lucent':>9} {'peak RSS MB':>12} {'data MB':>8}"
    )
    for name, case in results["cases"].items():
        base = case["lucent"]["median_s"] if case.get("lucent") else None
        for reader, res in case.items():
            if res is None:
                print(f"{name:34} {reader:10} {'skipped':>8}")
                continue
            ratio = f"{res['median_s'] / base:.2f}×" if base else ""
            rss = f"{res['peak_rss'] / 1e6:.0f}" if "peak_rss" in res else "-"
            if res.get("children_peak_rss"):
                rss += f" (+{res['children_peak_rss'] / 1e6:.0f}/worker)"
            data = f"{res['nbytes'] / 1e6:.0f}" if "nbytes" in res else "-"
            print(
                f"{name:34} {reader:10} {res['cold_s']:8.3f} {res['median_s']:9.3f} {ratio:>9} {rss:>12} {data:>8}"
            )
    if "note" in results:
        print(results["note"])
    print(f"load average: start {results['load_avg_start']}, end {results['load_avg_end']}")


if __name__ == "__main__":
    main()
