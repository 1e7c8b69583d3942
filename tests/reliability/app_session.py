"""A scripted Lucent session, run as a child process that the no-data-loss tests SIGKILL mid-way.

    python -m tests.reliability.app_session STUDY MODE

Environment: ``QT_QPA_PLATFORM=offscreen`` and ``LUCENT_CONFIG_DIR`` (where the autosave lands). The child
prints one line per event on stdout (flushed), and then keeps working until it is killed:

* ``annotations``: adds a text annotation ``note <n>`` every round; after the autosave file holds it
  (polled, i.e. > ``app.autosave.DEBOUNCE_MS`` later) it prints ``saved <n> <text>`` and adds the next.
* ``job``: runs the toy engine to completion (its layers are added to the document), waits for the autosave
  to hold them (``saved-layers <n> <names…>``), adds an annotation (``saved 1 <text>``), then starts a slow
  toy job and prints ``job-running`` once it reports progress.

Only the application's public API is used (MainWindow.open_paths, Document.annotations, EngineController.run);
the autosave file is read with :func:`viewer.io.workspace.read_workspace_state`.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main(study: str, mode: str) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["lucent-test"])
    from app.main_window import MainWindow
    from app.settings import Settings
    from tests.engines.toy_engine import ToyEngine
    from viewer.io.errors import LoadError
    from viewer.io.workspace import read_workspace_state
    from viewer.model.annotations import Annotation

    win = MainWindow(Settings())
    win.ask_restore = lambda question: False  # a fresh session: start from the study itself
    win.show()
    assert win.open_paths([study]), getattr(win, "last_error", "open failed")
    doc = win.document
    centre = doc.base.center_patient()

    def pump_until(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            app.processEvents()
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def saved_state() -> dict | None:
        path = win.autosaver.path
        if path is None or not path.exists():
            return None
        try:
            return read_workspace_state(path)
        except LoadError:
            return None

    def add_note(n: int) -> str:
        text = f"note {n}"
        doc.annotations.append(Annotation("text", "axial", centre + np.array([n, 0.0, 0.0]), text))
        return text

    def wait_saved_annotations(n: int) -> None:
        ok = pump_until(lambda: (s := saved_state()) is not None and len(s["annotations"]) >= n, 30)
        if not ok:
            print("autosave-timeout", flush=True)
            sys.exit(3)

    print("ready", flush=True)
    if mode == "annotations":
        n = 0
        while True:
            n += 1
            text = add_note(n)
            wait_saved_annotations(n)
            print(f"saved {n} {text}", flush=True)
    elif mode == "job":
        runner = win.engines.runner
        win.engines.run(ToyEngine())
        if not runner.wait_idle(60):
            print("job-timeout", flush=True)
            return 3
        names = [la.name for la in doc.layers][1:]
        pump_until(lambda: (s := saved_state()) is not None and len(s["layers"]) >= len(names), 60)
        print(f"saved-layers {len(names)} " + "|".join(names), flush=True)
        text = add_note(1)
        wait_saved_annotations(1)
        print(f"saved 1 {text}", flush=True)
        started = []
        runner.progress.connect(lambda job_id, fraction, message: started.append(fraction))
        win.engines.run(ToyEngine(delay_s=0.5), query="half made")
        pump_until(lambda: bool(started), 60)
        print("job-running", flush=True)
        pump_until(lambda: False, 600)  # keep the job going until we are killed
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
