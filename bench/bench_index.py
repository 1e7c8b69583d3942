"""Benchmark the study index: import 10,000 small DICOM files and filter 1,000 studies.

    python -m bench.bench_index [--files 10000] [--keep DIR]

Writes a tree with pydicom (several patients, studies and series, ~1 % corrupt files and a few duplicate
SOPInstanceUIDs), then times in the same run:

* naive: a full ``pydicom.dcmread`` of every file, one after the other (what a simple importer would do);
* import: :meth:`StudyIndex.import_paths` into a new database (header-only reads, thread pool, transactions);
* import with ``workers=1`` (the thread pool helps cold disks; on a warm cache the GIL makes it cost);
* re-import: the same tree again (every file unchanged: stat only);
* filter: :meth:`StudyIndex.studies` on the 1,000-study library (text, modality, date range), best of 5.

Targets (issue 12): 10,000 files ≤ 30 s, filter ≤ 50 ms. Results go to ``bench/results/index.json``.
:func:`write_tree` is also used by the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

UID_ROOT = "1.2.826.0.1.3680043.8.498.7712"
MODALITIES = ("CT", "MR", "CT", "PT")
FILES_PER_SERIES = 5
SERIES_PER_STUDY = 2
STUDIES_PER_PATIENT = 4


@dataclass
class TreeInfo:
    """What :func:`write_tree` wrote: counts the index must reproduce."""

    root: Path
    dicom: int
    corrupt: list[Path]
    duplicates: list[tuple[Path, Path]]
    patients: int
    studies: int
    series: int


def _base_dataset() -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 2.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    return ds


def write_tree(root: str | Path, n_files: int = 10_000, corrupt_every: int = 97, n_duplicates: int = 3,
               seed: int = 0) -> TreeInfo:
    """Write about ``n_files`` files: patient/study/series folders of small 8×8 MR/CT images.

    Layout ``root/P{p}/S{s}/SE{n}/IM{i}.dcm``: 10 images... ``FILES_PER_SERIES`` per series, 2 series per study,
    4 studies per patient (so 10,000 files = 1,000 studies of 250 patients). Every ``corrupt_every``-th file
    is replaced by a corrupt one (garbage, empty, or a DICOM cut inside its header) and ``n_duplicates``
    extra copies of valid files are written elsewhere (same SOPInstanceUID). Patient 0 has a non-ASCII name.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ds = _base_dataset()
    pixels = rng.integers(0, 1000, size=(8, 8), dtype=np.int16)
    ds.PixelData = pixels.tobytes()
    n_series = max(1, round(n_files / FILES_PER_SERIES))
    n_studies = max(1, n_series // SERIES_PER_STUDY)
    n_patients = max(1, n_studies // STUDIES_PER_PATIENT)
    corrupt: list[Path] = []
    valid: list[Path] = []
    count = 0
    for st in range(n_studies):
        p = st % n_patients
        ds.PatientName = "Müller^Jörg" if p == 0 else f"Patient{p:04d}^Test"
        ds.PatientID = f"PID{p:05d}"
        ds.PatientBirthDate = f"{1940 + p % 60}0{1 + p % 9}15"
        ds.PatientSex = "MF"[p % 2]
        ds.StudyInstanceUID = f"{UID_ROOT}.1.{st}"
        ds.StudyDate = f"{2010 + st % 15}{1 + st % 12:02d}{1 + st % 28:02d}"
        ds.StudyTime = "101500"
        ds.StudyDescription = ("Brain MRI", "Chest CT", "Abdomen CT", "Knee MRI")[st % 4]
        ds.AccessionNumber = f"ACC{st:06d}"
        for se in range(SERIES_PER_STUDY):
            modality = MODALITIES[(st + se) % len(MODALITIES)]
            ds.Modality = modality
            ds.SeriesInstanceUID = f"{UID_ROOT}.2.{st}.{se}"
            ds.SeriesNumber = se + 1
            ds.SeriesDescription = f"{modality} series {se + 1}"
            folder = root / f"P{p:04d}" / f"S{st:05d}" / f"SE{se}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(FILES_PER_SERIES):
                ds.SOPInstanceUID = f"{UID_ROOT}.3.{st}.{se}.{i}"
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.InstanceNumber = i + 1
                ds.ImagePositionPatient = [0.0, 0.0, 2.0 * i]
                path = folder / f"IM{i:04d}.dcm"
                count += 1
                if count % corrupt_every == 0:
                    _write_corrupt(path, ds, len(corrupt))
                    corrupt.append(path)
                else:
                    ds.save_as(path, enforce_file_format=True)
                    valid.append(path)
    duplicates = []
    dup_dir = root / "copies"
    dup_dir.mkdir(exist_ok=True)
    for k in range(n_duplicates):
        src = valid[(k * 7919) % len(valid)]
        dst = dup_dir / f"copy{k}.dcm"
        shutil.copyfile(src, dst)
        duplicates.append((src, dst))
    return TreeInfo(root, len(valid) + len(duplicates), corrupt, duplicates, n_patients, n_studies,
                    n_studies * SERIES_PER_STUDY)


def _write_corrupt(path: Path, ds: Dataset, k: int) -> None:
    kind = k % 3
    if kind == 0:
        path.write_bytes(os.urandom(300))  # garbage with a .dcm name
    elif kind == 1:
        path.write_bytes(b"")  # empty file
    else:  # a real DICOM file cut in the middle of its header
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        path.write_bytes(data[: 128 + 4 + 200])


def run(n_files: int, keep: Path | None = None) -> list[dict]:
    """Write the tree, time naive reads, import, re-import and filters; returns the report rows."""
    import pydicom

    from viewer.io.index import StudyFilter, StudyIndex

    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="lucent-bench-index-"))
    try:
        t = time.perf_counter()
        info = write_tree(work / "tree", n_files)
        t_write = time.perf_counter() - t
        files = sorted(p for p in (work / "tree").rglob("*") if p.is_file())
        print(f"wrote {len(files)} files ({len(info.corrupt)} corrupt, {info.studies} studies) in {t_write:.1f} s")

        t = time.perf_counter()
        bad = 0
        for f in files:
            try:
                pydicom.dcmread(f)
            except Exception:  # noqa: BLE001 - counting failures of the naive reader
                bad += 1
        t_naive = time.perf_counter() - t

        db = work / "index.sqlite"
        db.unlink(missing_ok=True)
        with StudyIndex(db) as index:
            t = time.perf_counter()
            rep = index.import_paths([work / "tree"])
            t_import = time.perf_counter() - t
            t = time.perf_counter()
            rep2 = index.import_paths([work / "tree"])
            t_reimport = time.perf_counter() - t
            counts = index.counts()
        with StudyIndex(work / "serial.sqlite") as serial:
            t = time.perf_counter()
            serial.import_paths([work / "tree"], workers=1)
            t_serial = time.perf_counter() - t
        with StudyIndex(db) as index:
            filters = {
                "filter: none (all studies)": StudyFilter(),
                "filter: text 'patient0012'": StudyFilter(text="patient0012"),
                "filter: text 'brain'": StudyFilter(text="brain"),
                "filter: modality PT": StudyFilter(modality="PT"),
                "filter: date 2015-2018": StudyFilter(date_from="2015-01-01", date_to="2018-12-31"),
                "filter: all combined": StudyFilter("ct", "CT", "20120101", "20201231"),
            }
            timings = {}
            for name, flt in filters.items():
                best = float("inf")
                for _ in range(5):
                    t = time.perf_counter()
                    rows = index.studies(flt)
                    best = min(best, time.perf_counter() - t)
                timings[name] = (best, len(rows))
        n = len(files)
        out = [
            {"step": "naive full dcmread per file", "files": n, "seconds": t_naive, "files_per_s": n / t_naive,
             "result": f"{bad} failed", "target": ""},
            {"step": "index import (headers only)", "files": n, "seconds": t_import, "files_per_s": n / t_import,
             "result": f"{rep.indexed} indexed, {rep.unreadable} unreadable, {len(rep.duplicates)} dup UIDs",
             "target": "<= 30 s" + (" ok" if t_import <= 30 else " MISSED")},
            {"step": "index import, 1 thread", "files": n, "seconds": t_serial, "files_per_s": n / t_serial,
             "result": "same work without the thread pool", "target": ""},
            {"step": "re-import (all unchanged)", "files": n, "seconds": t_reimport,
             "files_per_s": n / t_reimport, "result": f"{rep2.unchanged} unchanged", "target": ""},
        ]
        for name, (secs, k) in timings.items():
            out.append({"step": name, "files": counts["studies"], "seconds": secs, "files_per_s": None,
                        "result": f"{k} studies", "target": "<= 50 ms" + (" ok" if secs <= 0.05 else " MISSED")})
        return out
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    from bench.common import report

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--keep", type=Path, help="write the tree and database here and keep them")
    a = p.parse_args()
    rows = run(a.files, a.keep)
    report("index", rows, ["step", "files", "seconds", "files_per_s", "result", "target"])


if __name__ == "__main__":
    main()
