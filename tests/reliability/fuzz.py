"""Mutation fuzzing of the DICOM and NIfTI readers with hypothesis (no atheris needed).

Seeds are small real files from ``../shared/data`` (or derived from them): a 64×64 uncompressed CT slice with
the real CT header, the enhanced MR multi-frame file uncompressed and RLE, a real JPEG 2000 CT slice, and a
48×48×16 crop of a real brain MRI as ``.nii`` and ``.nii.gz``. A mutation is a short list of byte operations
(bit flips, overwrites with boundary values, insertions, deletions, truncation), biased towards the header.
For ``.nii.gz`` seeds half of the examples mutate the uncompressed stream (then gzip it) and half the
compressed bytes.

Each example is written to a file and goes through ``find_series`` + ``load()`` + one extract per plane
(:func:`tests.reliability.runner._exercise`) under a per-example alarm (``deadline_s``). A one-line
``LoadError`` or a load is fine; any other exception, a multi-line message or the alarm is a failure: the
input (shrunk by hypothesis) is saved under ``save_dir`` as ``<target>-<sha1>.<ext>`` and reported.

Run as a child process (``python -m tests.reliability.fuzz --examples N`` or ``--seconds S``) so that a
segfault in a codec cannot take pytest down: the current input is always on disk (``<work>/current*``)
and the parent keeps it as the regression file when the child dies.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\x7f", b"\x00\x80",
            b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x01\x00\x01\x00", b"DICM", b"n+1\x00", b"\xfe\xff\x00\xe0",
            b"\xfe\xff\xdd\xe0", b"\xe0\x7f\x10\x00", b"nan", b"-1\\"]


def seeds(shared: Path) -> dict[str, tuple[bytes, str]]:
    """Target name → (seed bytes, file suffix)."""
    import warnings

    import nibabel as nib
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ct = sorted((shared / "dicom" / "ct_series").iterdir())
    misc = shared / "dicom" / "misc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(ct[0])
        arr = ds.pixel_array[::8, ::8].astype(np.uint16)
        ds.PixelData = arr.tobytes()
        ds.Rows, ds.Columns = arr.shape
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
    img = nib.load(str(shared / "brain_mri" / "brats_2013_pat0001_1" / "T1c_subtrMeanDivStd.nii.gz"))
    crop = np.asarray(img.dataobj[96:144, 96:144, 70:86], dtype=np.float32)
    small = nib.Nifti1Image(crop, img.affine, img.header)
    small.set_data_dtype(np.float32)
    nii = small.to_bytes()
    return {
        "dicom_ct64": (buf.getvalue(), ".dcm"),
        "dicom_emri": ((misc / "emri_small.dcm").read_bytes(), ".dcm"),
        "dicom_emri_rle": ((misc / "emri_small_RLE.dcm").read_bytes(), ".dcm"),
        "dicom_ct_j2k": (ct[0].read_bytes(), ".dcm"),
        "nifti": (nii, ".nii"),
        "nifti_gz": (nii, ".nii.gz"),
    }


def mutate(data: bytes, ops: list[tuple], compressed: bool = False) -> bytes:
    """Apply ``ops`` (see :func:`ops_strategy`) to ``data``."""
    d = bytearray(data)
    for op in ops:
        kind, where, arg = op
        if not d:
            break
        pos = int(where * len(d)) if isinstance(where, float) else min(where, len(d) - 1)
        pos = min(max(pos, 0), len(d) - 1)
        if kind == "flip":
            d[pos] ^= 1 << (arg % 8)
        elif kind == "set":
            v = BOUNDARY[arg % len(BOUNDARY)]
            d[pos:pos + len(v)] = v
        elif kind == "insert":
            d[pos:pos] = BOUNDARY[arg % len(BOUNDARY)] * (1 + arg % 3)
        elif kind == "delete":
            del d[pos:pos + 1 + arg % 64]
        elif kind == "truncate":
            del d[pos:]
    return bytes(d)


def ops_strategy():
    from hypothesis import strategies as st

    where = st.one_of(st.integers(0, 2048), st.floats(0.0, 1.0, allow_nan=False))  # header-biased
    op = st.tuples(st.sampled_from(["flip", "flip", "set", "insert", "delete", "truncate"]), where,
                   st.integers(0, 255))
    return st.lists(op, min_size=1, max_size=6)


class Deadline(BaseException):
    """The per-example alarm went off (a BaseException: readers' ``except Exception`` cannot hide it)."""


def check_file(path: Path, deadline_s: float) -> None:
    """Raise AssertionError (or Deadline) when the readers do anything but load or give a clean LoadError."""
    from tests.reliability.runner import _exercise

    def on_alarm(signum, frame):
        raise Deadline()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, deadline_s)
    try:
        outcome, msg, _ = _exercise(path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert outcome != "crash", msg


def run_target(name: str, seed: bytes, suffix: str, work: Path, max_examples: int, seed_no: int,
               deadline_s: float, save_dir: Path | None) -> dict:
    """Fuzz one target for ``max_examples``; returns {"examples", "failure", "time_s"}."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    count = 0
    current = work / f"current-{name}{suffix}"

    @hseed(seed_no)
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=False, print_blob=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(ops=ops_strategy(), on_compressed=st.booleans())
    def one(ops, on_compressed):
        nonlocal count
        count += 1
        if suffix == ".nii.gz":
            data = mutate(gzip.compress(seed, mtime=0), ops) if on_compressed else gzip.compress(
                mutate(seed, ops), mtime=0)
        else:
            data = mutate(seed, ops)
        current.write_bytes(data)
        try:
            check_file(current, deadline_s)
        except Deadline:
            raise AssertionError(f"over {deadline_s} s") from None

    t0 = time.perf_counter()
    failure = None
    try:
        one()
    except Exception as exc:  # hypothesis re-raises the shrunk failure: its input is in `current`
        data = current.read_bytes()
        failure = {"error": f"{type(exc).__name__}: {exc}"[:400], "size": len(data)}
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            out = save_dir / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}{suffix}"
            out.write_bytes(data)
            failure["saved"] = str(out)
    return {"target": name, "examples": count, "failure": failure, "time_s": round(time.perf_counter() - t0, 2)}


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--examples", type=int, default=100, help="examples per target per round")
    p.add_argument("--seconds", type=float, default=0.0, help="keep doing rounds until this much time passed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deadline", type=float, default=5.0)
    p.add_argument("--save", default="", help="folder for crashing inputs")
    p.add_argument("--targets", default="")
    a = p.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    targets = seeds(Path(a.shared))
    if a.targets:
        targets = {k: v for k, v in targets.items() if k in a.targets.split(",")}
    save = Path(a.save) if a.save else None
    t0 = time.monotonic()
    rounds = 0
    totals: dict[str, dict] = {}
    while True:
        for name, (data, suffix) in targets.items():
            r = run_target(name, data, suffix, work, a.examples, a.seed * 1000 + rounds, a.deadline, save)
            t = totals.setdefault(name, {"target": name, "examples": 0, "failures": [], "time_s": 0.0})
            t["examples"] += r["examples"]
            t["time_s"] = round(t["time_s"] + r["time_s"], 2)
            if r["failure"]:
                t["failures"].append(r["failure"])
            print(json.dumps({"progress": r}), flush=True)
        rounds += 1
        if time.monotonic() - t0 >= a.seconds:
            break
    print(json.dumps({"done": list(totals.values()), "rounds": rounds,
                      "time_s": round(time.monotonic() - t0, 2)}), flush=True)
    return 0


def run_fuzz(shared: Path, work: Path, examples: int, seconds: float = 0.0, seed: int = 0,
             deadline_s: float = 5.0, save_dir: Path | None = None, timeout_s: float = 600.0,
             targets: str = "") -> dict:
    """Run :func:`child_main` in a subprocess; a child killed by a signal is reported with its input kept."""
    import subprocess

    cmd = [sys.executable, "-m", "tests.reliability.fuzz", "--shared", str(shared), "--work", str(work),
           "--examples", str(examples), "--seconds", str(seconds), "--seed", str(seed),
           "--deadline", str(deadline_s), "--save", str(save_dir or ""), "--targets", targets]
    env = dict(os.environ, PYTHONPATH=str(REPO), LUCENT_DECODE_PROCESSES="0")
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    done = next((x for x in lines if "done" in x), None)
    if proc.returncode != 0 or done is None:
        kept = []
        for cur in work.glob("current-*"):
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                data = cur.read_bytes()
                out = save_dir / f"died-{cur.name.removeprefix('current-').split('.')[0]}-" \
                                  f"{hashlib.sha1(data).hexdigest()[:12]}{''.join(cur.suffixes)}"
                out.write_bytes(data)
                kept.append(str(out))
        return {"died": proc.returncode, "stderr": proc.stderr[-2000:], "kept": kept,
                "progress": [x["progress"] for x in lines if "progress" in x]}
    return done


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
