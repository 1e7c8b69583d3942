"""Viewer benchmarks: start-up to the first frame of the demo study, and slice-scrolling frame rate.

    python bench/bench_viewer.py [--frames 300]

Start-up is measured in a fresh process (wall time from spawning it to the first painted frame of the
demo study, offscreen), through ``app.cli.start_gui`` — what ``lucent`` with no argument runs. Scrolling
repaints the view after every slice step (offscreen raster), on the 512×512 demo CT, in the single axial
view and in the 2×2 MPR layout with a label overlay.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.common import report  # noqa: E402

CHILD = r"""
import time, sys
from app.cli import _viewer_parser, start_gui
app, win = start_gui(_viewer_parser().parse_args([]))  # the real start-up path (no argument: the demo study)
win.study_view.primary.graphics.viewport().repaint()  # synchronous: the first frame is on screen
print('FIRST_FRAME', time.time())
app.processEvents()
print('MODULES', int('torch' in sys.modules), int('vtkmodules' in sys.modules))
win.close()
"""


def startup(repeats: int = 3) -> list[float]:
    times = []
    env = dict(os.environ, LUCENT_CONFIG_DIR=str(REPO / "bench" / "results" / ".cfg"))
    for _ in range(repeats):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                             check=True).stdout
        first = float(next(line.split()[1] for line in out.splitlines() if line.startswith("FIRST_FRAME")))
        times.append(first - t0)
        mods = next(line for line in out.splitlines() if line.startswith("MODULES"))
    return times, mods


def add_overlays(doc) -> None:
    """Two heatmaps on a 4× coarser grid (resampled per slice) and a label mask on the base grid."""
    import numpy as np

    from viewer.model import HeatmapLayer, LabelsLayer, Volume

    nk, nj, ni = doc.base.shape3d
    rng = np.random.default_rng(0)
    coarse = doc.base.affine @ np.diag([4.0, 4.0, 1.0, 1.0])
    for name in ("engine A", "engine B"):
        heat = rng.random((nk, nj // 4, ni // 4), dtype=np.float32).astype(np.float16)
        doc.add_layer(HeatmapLayer(name=name, volume=Volume(heat, coarse), threshold=0.5))
    doc.add_layer(LabelsLayer(name="bright", volume=Volume((doc.base.array > 200).astype(np.uint8),
                                                           doc.base.affine)))


def overlay_memory() -> list[dict]:
    """Bytes each overlay adds to the process (its array, float16/uint8 storage, no float64 copies)."""
    import numpy as np

    from app.loading import DEMO_STUDY, open_document

    doc = open_document([DEMO_STUDY])
    before = len(doc.layers)
    add_overlays(doc)
    rows = []
    for layer in list(doc.layers)[before:]:
        a = layer.volume.array
        rows.append({"measure": f"memory per overlay: {layer.name}", "value": a.nbytes / 2**20, "unit": "MiB",
                     "target": "no float64", "note": f"{a.dtype} {a.shape}; float64 would be "
                     f"{a.size * 8 / 2**20:.1f} MiB" + ("" if a.dtype != np.float64 else " (!)")})
    return rows


def scroll_fps(layout: str, frames: int, overlays: bool = False) -> float:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["bench"])
    from app.loading import DEMO_STUDY, open_document
    from viewer.views.study_view import StudyView

    doc = open_document([DEMO_STUDY])
    if overlays:
        add_overlays(doc)
    view = StudyView(doc, layout=layout, with_3d=False)
    view.resize(1024, 1024)
    view.show()
    app.processEvents()
    axial = view.primary
    n = axial.mapping.n_slices
    t = time.perf_counter()
    step = 1
    for _ in range(frames):
        if not 0 <= axial.slice_index + step < n:
            step = -step
        axial.scroll(step)
        for v in view.views.values():
            v.graphics.viewport().repaint()
    fps = frames / (time.perf_counter() - t)
    view.detach()
    view.close()
    return fps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    times, mods = startup(a.repeats)
    rows = [
        {"measure": "start-up to first frame (demo CT)", "value": min(times), "unit": "s", "target": "<= 1.0",
         "note": f"best of {a.repeats}; median {sorted(times)[len(times) // 2]:.2f} s; torch/vtk loaded: {mods[8:]}"},
        {"measure": "scroll, single axial 512x512", "value": scroll_fps("single", a.frames), "unit": "frames/s",
         "target": ">= 60", "note": "repaint after each step, offscreen"},
        {"measure": "scroll, single axial + 2 heatmaps + mask", "value": scroll_fps("single", a.frames, True),
         "unit": "frames/s", "target": ">= 60", "note": "heatmaps on a 4x coarser grid, resampled per slice"},
        {"measure": "scroll, MPR 2x2 + 2 heatmaps + mask", "value": scroll_fps("mpr", a.frames, True),
         "unit": "frames/s", "target": ">= 60", "note": "all three views repainted per step (3D view not created)"},
        *overlay_memory(),
    ]
    report("viewer", rows, ["measure", "value", "unit", "target", "note"])


if __name__ == "__main__":
    main()
