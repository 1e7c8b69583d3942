"""Viewer benchmarks: start-up to the first frame of the demo study, and slice-scrolling frame rate.

    python bench/bench_viewer.py [--frames 300]

Start-up is measured in a fresh process (wall time from spawning it to the first painted frame of the
demo study, offscreen). Scrolling repaints the view after every slice step (offscreen raster), on the
512×512 demo CT, in the single axial view and in the 2×2 MPR layout with a label overlay.
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
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer
app = QApplication(['lucent'])
from app.main_window import MainWindow
from app.settings import Settings
win = MainWindow(Settings())
win.show()
win.open_demo()
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


def scroll_fps(layout: str, frames: int) -> float:
    import numpy as np
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["bench"])
    from app.loading import DEMO_STUDY, open_document
    from viewer.model import LabelsLayer, Volume
    from viewer.views.study_view import StudyView

    doc = open_document([DEMO_STUDY])
    if layout == "mpr":
        labels = (doc.base.array > 200).astype(np.uint8)
        doc.add_layer(LabelsLayer(name="bright", volume=Volume(labels, doc.base.affine)))
    view = StudyView(doc, layout=layout)
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
        {"measure": "scroll, MPR 2x2 + label overlay", "value": scroll_fps("mpr", a.frames), "unit": "frames/s",
         "target": ">= 60", "note": "all three views repainted per step"},
    ]
    report("viewer", rows, ["measure", "value", "unit", "target", "note"])


if __name__ == "__main__":
    main()
