"""3D view benchmark: VTK import cost, time to first frame, and rotation frames/s, offscreen.

Volumes: the BraTS FLAIR (+ its tumour labels) from ../shared/data when present, the demo CT
(resources/demo/ct_abdomen, DICOM) and a synthetic 256³ int16 volume. Each row builds a fresh
:class:`~viewer.views.vtk_scene.Scene3D` (the Qt-free part of View3D that does all the VTK work) on an
offscreen render window of ``--size`` pixels, times the first frame (scene construction including label
surfaces + first render + read-back, what a user waits for once the Document exists), then azimuth steps of 5° (full quality, and "interacting" quality as during a drag).

    .venv/bin/python -m bench.bench_view3d [--size 400] [--frames 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from bench.common import report  # noqa: E402
from viewer.model.document import Document  # noqa: E402
from viewer.model.layers import LabelsLayer  # noqa: E402
from viewer.model.volume import LPS_FROM_RAS, Volume  # noqa: E402

SHARED = Path(os.environ.get("LUCENT_SHARED_DATA", REPO.parent / "shared" / "data"))


def vtk_import_seconds() -> float:
    """Cold ``import viewer.views.vtk_scene`` (all VTK modules the 3D view uses) in a fresh interpreter."""
    code = ("import time; t = time.perf_counter(); import viewer.views.vtk_scene; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def brain() -> tuple[Volume, Volume] | None:
    case = SHARED / "brain_mri" / "brats_2013_pat0001_1"
    if not case.is_dir():
        return None
    import nibabel as nib

    f = nib.load(case / "Flair_subtrMeanDivStd.nii.gz")
    s = nib.load(case / "OTMultiClass.nii.gz")
    base = Volume(np.asarray(f.dataobj).transpose(2, 1, 0), LPS_FROM_RAS @ f.affine, modality="MR")
    labels = Volume(np.asarray(s.dataobj).astype(np.uint8).transpose(2, 1, 0), LPS_FROM_RAS @ s.affine)
    return base, labels


def demo_ct() -> Volume | None:
    """The demo CT via viewer.io.load_volume when it exists, else a minimal pydicom reader."""
    folder = REPO / "resources" / "demo" / "ct_abdomen"
    if not folder.is_dir():
        return None
    try:
        from viewer.io import load_volume  # type: ignore[attr-defined]

        return load_volume(folder)
    except ImportError:
        pass
    import pydicom

    dss = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.is_file()]
    row, col = (np.array(dss[0].ImageOrientationPatient[:3], float), np.array(dss[0].ImageOrientationPatient[3:], float))
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    slope, icpt = float(getattr(dss[0], "RescaleSlope", 1)), float(getattr(dss[0], "RescaleIntercept", 0))
    a = np.stack([d.pixel_array for d in dss]).astype(np.int16)
    a = (a * slope + icpt).astype(np.int16) if (slope, icpt) != (1.0, 0.0) else a
    pos = np.array([d.ImagePositionPatient for d in dss], float)
    dr, dc = (float(v) for v in dss[0].PixelSpacing)
    step = pos[1] - pos[0] if len(pos) > 1 else normal
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = row * dc, col * dr, step, pos[0]
    return Volume(a, aff, modality="CT")


def synthetic(n: int = 256) -> Volume:
    z, y, x = np.ogrid[:n, :n, :n]
    r = np.sqrt((x - n / 2) ** 2 + (y - n / 2) ** 2 + (z - n / 2) ** 2)
    a = np.where(r < 0.45 * n, 40, -1000).astype(np.int16)
    a[(r > 0.40 * n) & (r < 0.45 * n)] = 900  # a skull-like shell
    return Volume(a, np.eye(4), modality="CT")


def run(name: str, volume: Volume, size: int, frames: int, labels: Volume | None = None) -> dict:
    from viewer.views.vtk_scene import Scene3D

    doc = Document(volume)  # the model's cost (default window etc.), not the 3D view's
    if labels is not None:
        doc.add_layer(LabelsLayer(name="labels", volume=labels))
    t0 = time.perf_counter()
    scene = Scene3D(doc, on_change=lambda: None)
    scene.set_size(size, size)
    scene.render_to_array()
    first = time.perf_counter() - t0

    def fps(interacting: bool) -> float:
        scene.set_interacting(interacting)
        t = time.perf_counter()
        for _ in range(frames):
            scene.rotate(5.0, 0.0)
            scene.render()
        scene.set_interacting(False)
        return frames / (time.perf_counter() - t)

    row = {"volume": name, "shape_kji": "×".join(map(str, volume.shape3d)), "dtype": str(volume.array.dtype),
           "preset": scene.preset, "mode": scene.volume_mode, "size_px": size,
           "first_frame_s": round(first, 3), "fps_full": round(fps(False), 1),
           "fps_interacting": round(fps(True), 1)}
    scene.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=400, help="render window width = height, pixels")
    ap.add_argument("--frames", type=int, default=10, help="rotation frames per fps measurement")
    args = ap.parse_args()
    imp = vtk_import_seconds()
    rows = []
    b = brain()
    if b is not None:
        rows.append(run("brats FLAIR", b[0], args.size, args.frames))
        rows.append(run("brats FLAIR + labels", b[0], args.size, args.frames, labels=b[1]))
    ct = demo_ct()
    if ct is not None:
        rows.append(run("demo CT", ct, args.size, args.frames))
    rows.append(run("synthetic 256³", synthetic(), args.size, args.frames))
    from viewer.views.vtk_scene import Scene3D  # noqa: F401  (already imported; for the renderer string)

    for r in rows:
        r["vtk_import_s"] = round(imp, 3)
    report("view3d", rows, ["volume", "shape_kji", "dtype", "preset", "mode", "size_px", "first_frame_s",
                            "fps_full", "fps_interacting", "vtk_import_s"])


if __name__ == "__main__":
    main()
