"""Headless VTK set-up: the render-window kind on Linux without a display, VTK's registrations and logging,
and offscreen render windows.

Importing this module imports VTK's rendering modules (about 0.2–0.5 s cold): import it lazily.
"""

from __future__ import annotations

import os
import sys


def ensure_headless_env() -> None:
    """On Linux without a display, make VTK create EGL render windows (skips the X probe).

    Must run before the first ``vtkRenderWindow`` is created; it only sets a default, never overrides.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


ensure_headless_env()

# ruff: noqa: E402  (VTK imports follow the environment set-up above on purpose)
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers interactor styles)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (registers volume mappers)
from vtkmodules.vtkCommonCore import vtkLogger
from vtkmodules.vtkRenderingCore import vtkRenderWindow

# VTK's own warnings (an empty iso-level "has no data to smooth") are noise on a user's terminal; errors stay.
vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)


def offscreen_window(width: int, height: int) -> vtkRenderWindow:
    """An offscreen render window of ``width`` × ``height`` pixels.

    EGL on Linux when VTK has it (its context belongs to no X connection, so it can live on a render thread
    beside Qt's own X connection), else the platform default.
    """
    window: vtkRenderWindow | None = None
    if sys.platform.startswith("linux"):
        try:
            from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

            window = vtkEGLRenderWindow()
        except ImportError:
            window = None
    window = window or vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(int(width), int(height))
    return window
