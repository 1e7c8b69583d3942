"""The pixel tests of issue 19 again in a real X window (Xvfb + Qt's xcb platform), where key bindings, focus,
fonts and the 3D view's OpenGL differ from the offscreen platform the suite otherwise runs on.

Runs tests/app/test_overlays_readable.py, test_window_3d.py and tests/viewer/views/test_view3d_thread.py in a
child pytest under
``xvfb-run`` (installed by scripts/setup.sh) and fails when any of them fails there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNDER_X = ("tests/app/test_overlays_readable.py", "tests/app/test_window_3d.py",
           "tests/viewer/views/test_view3d_thread.py")


def test_overlay_pixels_and_3d_thread_under_xvfb():
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.skip("xvfb-run is not installed (scripts/setup.sh installs it)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    env["QT_QPA_PLATFORM"] = "xcb"
    proc = subprocess.run([xvfb, "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-m", "pytest", "-q",
                           "-p", "no:cacheprovider", *UNDER_X], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
