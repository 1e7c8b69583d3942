"""The app exits cleanly (code 0, no Qt thread warnings) after a real session — a study in the MPR layout
with its 3D view, and a study-browser import still running — the way a user quits, through the window."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SESSION = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(['lucent'])
from app.main_window import MainWindow
win = MainWindow()
win.show()
win.open_demo()
win.browser.import_paths([sys.argv[1]])
def finish():
    win.close()
    app.quit()
QTimer.singleShot(1500, finish)
sys.exit(app.exec())
"""


def test_session_exits_cleanly(tmp_path, shared_data):
    env = dict(os.environ, LUCENT_CONFIG_DIR=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SESSION, str(shared_data / "dicom")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "QThread: Destroyed" not in proc.stderr
    assert "Fatal Python error" not in proc.stderr
