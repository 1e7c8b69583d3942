"""Command line: ``lucent [PATH...]`` opens the viewer; sub-commands and ``--screenshot`` run headless.

    lucent [PATH...]                                   open the viewer (no PATH: last study, else the demo)
    lucent PATH --screenshot OUT.png [--layout mpr|single] [--slice N] [--preset NAME]
    lucent convert PATH OUT.nii.gz [--series UID]      write the loaded volume as NIfTI
    lucent infer ...                                   batch AI inference (see ``lucent infer --help``)
    lucent convert-weights IN.pt OUT.safetensors       convert a PyTorch checkpoint safely
    lucent import PATH... [--db FILE]                  index folders into the study browser

Errors in headless modes print one line on stderr (no traceback) and exit non-zero: 2 for bad input,
3 when there is no display to open the viewer on, 1 for anything else. ``LUCENT_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

PRESET_CHOICES = ("brain", "subdural", "stroke", "lung", "mediastinum", "bone", "auto", "file")


class CliError(Exception):
    """A user-facing error; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _viewer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lucent", description="Lucent radiology viewer (research use only).",
                                epilog="Sub-commands: convert, infer, convert-weights, import (each has --help).")
    p.add_argument("paths", nargs="*", help="DICOM file or folder, NIfTI, PNG/JPEG/TIFF")
    p.add_argument("--screenshot", metavar="OUT.png", help="render offscreen to OUT.png and exit")
    p.add_argument("--layout", choices=("mpr", "single"), default="mpr")
    p.add_argument("--slice", type=int, metavar="N", help="axial slice to show, 1-based as in the view")
    p.add_argument("--preset", choices=PRESET_CHOICES, help="window/level preset")
    p.add_argument("--size", default="1024x1024", metavar="WxH", help="screenshot size in pixels")
    p.add_argument("--series", metavar="UID", help="series to open when a folder holds several")
    return p


def _convert(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="lucent convert",
                                description="Write a DICOM series, multiframe, NIfTI or 2D image as NIfTI.")
    p.add_argument("path")
    p.add_argument("out", help="output .nii or .nii.gz")
    p.add_argument("--series", metavar="UID", help="series to convert when the folder holds several")
    a = p.parse_args(argv)
    if not a.out.endswith((".nii", ".nii.gz")):
        raise CliError("the output name must end in .nii or .nii.gz", 2)
    from viewer.io import load_volume, write_nifti

    volume = load_volume(a.path, series_uid=a.series)
    write_nifti(volume, a.out)
    for w in volume.metadata.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {a.out}: {'×'.join(map(str, volume.array.shape[::-1]))} {volume.array.dtype}")
    return 0


def _screenshot(a: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.loading import DEMO_STUDY, open_document

    paths = a.paths or [str(DEMO_STUDY)]
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError as exc:
        raise CliError(f"--size must look like 1024x768, not {a.size!r}", 2) from exc

    def pick(cands):
        if a.series:
            for c in cands:
                if c.uid == a.series:
                    return c
            raise CliError(f"no series {a.series} under {paths[0]}", 2)
        return max(cands, key=lambda c: c.n_files)

    doc = open_document(paths, choose=pick)
    if a.preset and not doc.base.rgb:
        from viewer.model.window_level import window_for

        doc.base_layer.window = window_for(a.preset, doc.base.metadata, doc.base.array)
    from app.screenshot import render_study_png

    render_study_png(doc, a.screenshot, layout=a.layout, size=(w, h), slice_number=a.slice)
    print(f"wrote {a.screenshot}")
    return 0


def start_gui(a: argparse.Namespace):  # noqa: ANN201 - (QApplication, MainWindow); Qt is imported lazily
    """Create the application and the main window and open the study (the start-up path, also benchmarked)."""
    from app.loading import DEMO_STUDY, prefetch
    from app.settings import Settings

    settings = Settings()
    first = list(a.paths) or settings.recent_files[:1] or [DEMO_STUDY]
    if not (len(first) == 1 and str(first[0]).endswith(".lucent")):
        prefetch(first)  # reads (GIL-free decoding) while Qt and pyqtgraph are imported
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Lucent")
    from app.main_window import MainWindow

    win = MainWindow(settings, layout=a.layout)
    win.show()
    if a.paths:
        win.open_paths(a.paths)
    else:
        recent = win.settings.recent_files
        if not (recent and win.open_paths(recent[:1])):
            win.open_demo()
    if a.preset:
        win.apply_preset(a.preset)
    return app, win


NO_DISPLAY = ("no display to open a window on{why}; run lucent in a desktop session (or `ssh -X`), or render "
              "without one: lucent PATH --screenshot OUT.png")
NO_DISPLAY_EXIT = 3


def display_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why Qt could not open a window here (it would abort the process), or None when it can.

    On Linux, the xcb platform needs ``DISPLAY`` naming an X server that accepts a connection (checked with
    libxcb, as Qt's plugin will), and wayland needs ``WAYLAND_DISPLAY``. Other systems and explicit headless
    platforms (offscreen, minimal, vnc…) are assumed fine.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip().lower()
    if platform.startswith("wayland"):
        return None if env.get("WAYLAND_DISPLAY") else ": WAYLAND_DISPLAY is not set"
    if platform not in ("", "xcb"):
        return None
    if not env.get("DISPLAY"):
        if not platform and env.get("WAYLAND_DISPLAY"):
            return None  # Qt picks wayland
        return ": DISPLAY is not set"
    return _x_server_problem(env["DISPLAY"])


def _x_server_problem(display: str) -> str | None:
    """None when the X server ``display`` accepts a connection; a reason otherwise (None if libxcb is absent)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("xcb")
    if not name:
        return None  # Qt's own message will have to do
    xcb = ctypes.CDLL(name)
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        return f": the X server {display!r} does not answer" if xcb.xcb_connection_has_error(conn) else None
    finally:
        xcb.xcb_disconnect(conn)


def _gui(a: argparse.Namespace) -> int:
    problem = display_problem()
    if problem is not None:
        raise CliError(NO_DISPLAY.format(why=problem), NO_DISPLAY_EXIT)
    app, _win = start_gui(a)
    return app.exec()


def _run(argv: Sequence[str]) -> int:
    if argv and argv[0] == "convert":
        return _convert(argv[1:])
    if argv and argv[0] == "import":
        from app.browser.cli import main as import_main

        return import_main(list(argv[1:]))
    if argv and argv[0] in ("infer", "convert-weights"):
        from engines import cli as engines_cli

        return engines_cli.main(list(argv))
    a = _viewer_parser().parse_args(argv)
    return _screenshot(a) if a.screenshot else _gui(a)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lucent`` and ``python main.py``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from viewer.io.errors import LoadError

    try:
        return _run(argv)
    except (LoadError, CliError, ValueError) as exc:
        if os.environ.get("LUCENT_DEBUG"):
            raise
        print(f"lucent: {exc}", file=sys.stderr)
        return getattr(exc, "code", 2)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a last line of defence for headless use: one line, no traceback
        if os.environ.get("LUCENT_DEBUG"):
            raise
        print(f"lucent: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
