"""Retrieve throughput from a PACS: Lucent's C-GET, C-MOVE and WADO-RS against dcmtk's getscu / movescu.

Starts a private Orthanc on loopback (``tests/net/orthanc.py``) and uploads the shared 20-slice CT enlarged
to ``--slices`` slices (real slices repeated 2 mm apart), once uncompressed (~530 kB a slice) and once as the
J2K files are (~160 kB). Each method retrieves each series ``--repeat`` times into a fresh folder; the table
gives the median wall time and MB/s (bytes written / wall time).

* Lucent rows time :func:`viewer.net.retrieve_series`: the instance list, the transfer, the atomic writes,
  the move into the library and the SQLite indexing — what a user waits for.
* "transfer only" rows time the client's ``retrieve`` into the library folder alone, which is what
  getscu/movescu do (write files).
* getscu proposes J2K lossless (``+xv``) and movescu accepts every syntax (``+xa``), so that Orthanc sends
  the files as stored, as Lucent's per-syntax presentation contexts let it. Orthanc 1.10 cannot transcode
  J2K, so getscu fails on the J2K series (noted in the table).
* dcmtk (getscu, movescu and Orthanc's own DIMSE code) leaves Nagle's algorithm on unless ``TCP_NODELAY=1``
  is in the environment, which costs ~45 ms per instance on loopback (40 slices: 2.0 s → 0.19 s with
  getscu): the bench sets it for Orthanc and the dcmtk tools, so that the baseline is dcmtk at its best.

Usage: ``.venv/bin/python bench/bench_retrieve.py [--slices 300] [--repeat 3] [--syntax both]`` (needs the
Debian packages orthanc, orthanc-dicomweb and dcmtk; without dcmtk its rows are left out). Writes
bench/results/retrieve.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import report  # noqa: E402
from tests.net.orthanc import (  # noqa: E402
    AET,
    PASSWORD,
    USER,
    OrthancServer,
    free_port,
    orthanc_missing,
    prepare_ct_series,
)

DATA = Path(os.environ.get("LUCENT_SHARED_DATA", REPO.parent / "shared" / "data"))
CALLING = "LUCENTBENCH"
DCMTK_AE = "DCMTKBENCH"
NODELAY = {"TCP_NODELAY": "1"}  # dcmtk's switch for TCP_NODELAY (see the module docstring)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def timed(run: Callable[[Path], None], repeat: int, n: int) -> dict:
    """Median wall time and MB/s of ``run(fresh folder)`` over ``repeat`` runs; checks ``n`` files arrived."""
    times, sizes = [], []
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="lucent-retrieve-"))
        try:
            t = time.perf_counter()
            run(out)
            times.append(time.perf_counter() - t)
            files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
                     and "studies.sqlite" not in p.name]
            if len(files) != n:
                raise RuntimeError(f"{len(files)} of {n} files arrived")
            sizes.append(sum(p.stat().st_size for p in files))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    med = statistics.median(times)
    return {"median_s": round(med, 3), "min_s": round(min(times), 3), "MB": round(sizes[0] / 1e6, 1),
            "MB_per_s": round(sizes[0] / 1e6 / med, 1), "repeats": repeat}


def methods_for(study_uid: str, series, dimse, web,  # noqa: ANN001 - RemoteSeries, ServerConfig ×2
                orthanc_port: int, dcmtk_port: int, n: int) -> list:
    """(name, client, run(out folder)) for every method of one series."""
    from viewer.net import ServerConfig, connect, retrieve_series
    from viewer.net.library import SeriesWriter

    def lucent(config: ServerConfig) -> Callable[[Path], None]:
        def run(out: Path) -> None:
            rep = retrieve_series(connect(config), [series], out, out / "studies.sqlite")
            assert rep.fetched == n

        return run

    def transfer_only(config: ServerConfig) -> Callable[[Path], None]:
        instances = connect(config).find_instances(study_uid, series.uid)

        def run(out: Path) -> None:
            writer = SeriesWriter(out, study_uid, series.uid)
            connect(config).retrieve(study_uid, series.uid, writer, instances)

        return run

    out = []
    for how in ("get", "move"):
        cfg = ServerConfig(**{**dimse.to_dict(), "retrieve": how})
        out.append((f"Lucent C-{how.upper()}", "pynetdicom + index", lucent(cfg)))
        out.append((f"Lucent C-{how.upper()} transfer only", "pynetdicom", transfer_only(cfg)))
    out.append(("Lucent WADO-RS", "dicomweb-client + index", lucent(web)))
    out.append(("Lucent WADO-RS transfer only", "dicomweb-client", transfer_only(web)))
    keys = ["-S", "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study_uid}", "-k",
            f"SeriesInstanceUID={series.uid}"]
    if shutil.which("getscu"):
        out.append(("dcmtk getscu", "baseline", lambda o: subprocess.run(
            ["getscu", "-q", "-aet", DCMTK_AE, "-aec", AET, "+xv", "-od", str(o), "127.0.0.1",
             str(orthanc_port), *keys], check=True, timeout=600, env={**os.environ, **NODELAY})))
    if shutil.which("movescu"):
        out.append(("dcmtk movescu", "baseline", lambda o: subprocess.run(
            ["movescu", "-q", "-aet", DCMTK_AE, "-aec", AET, "-aem", DCMTK_AE, "--port", str(dcmtk_port),
             "+xa", "-od", str(o), "127.0.0.1", str(orthanc_port), *keys], check=True, timeout=600,
            env={**os.environ, **NODELAY})))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--syntax", choices=["both", "uncompressed", "j2k"], default="both")
    a = ap.parse_args()
    why = orthanc_missing()
    if why:
        sys.exit(f"bench_retrieve: {why}")
    from viewer.net import ServerConfig, connect

    work = Path(tempfile.mkdtemp(prefix="lucent-bench-retrieve-"))
    lucent_port, dcmtk_port = free_port(), free_port()
    server = OrthancServer.start(work / "orthanc", {"lucent": (CALLING, lucent_port),
                                                   "dcmtk": (DCMTK_AE, dcmtk_port)}, env=NODELAY)
    rows = []
    try:
        dimse = ServerConfig("bench", host="127.0.0.1", port=server.dicom_port, called_ae=AET,
                             calling_ae=CALLING, store_port=lucent_port)
        web = ServerConfig("bench-web", kind="dicomweb", url=server.dicomweb_url, auth="basic", username=USER,
                           secret=PASSWORD)
        syntaxes = ["uncompressed", "j2k"] if a.syntax == "both" else [a.syntax]
        for syntax in syntaxes:
            series_dir = prepare_ct_series(DATA / "dicom" / "ct_series", work / syntax, a.slices,
                                           seed="bench", uncompressed=syntax == "uncompressed")
            files = sorted(series_dir.iterdir())
            t = time.perf_counter()
            server.upload(files)
            import pydicom

            head = pydicom.dcmread(files[0], stop_before_pixels=True)
            print(f"{syntax}: uploaded {len(files)} files ({folder_bytes(series_dir) / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - t:.1f} s")
            series = next(s for s in connect(dimse).find_series(head.StudyInstanceUID)
                          if s.uid == head.SeriesInstanceUID)
            for name, what, run in methods_for(head.StudyInstanceUID, series, dimse, web, server.dicom_port,
                                               dcmtk_port, len(files)):
                try:
                    r = timed(run, a.repeat, len(files))
                except (RuntimeError, subprocess.CalledProcessError, AssertionError) as exc:
                    r = {"note": f"failed: {str(exc).splitlines()[0][:80]}"}
                    if name == "dcmtk getscu" and syntax == "j2k":
                        r["note"] = "failed: Orthanc 1.10 cannot transcode J2K to the syntax getscu accepts"
                rows.append({"syntax": syntax, "method": name, "client": what, "slices": len(files), **r})
                print(f"  {name}: {r.get('MB_per_s', r.get('note'))} MB/s", flush=True)
        print()
        report("retrieve", rows, ["syntax", "method", "client", "slices", "MB", "median_s", "min_s",
                                  "MB_per_s", "note"])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
