"""Engine registry: lazy discovery without torch, register/unregister, applicable engines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines import registry
from engines.base import EngineError
from tests.engines.toy_engine import ToyEngine
from viewer.model.volume import Volume

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy():
    with registry.registered(ToyEngine()) as engine:
        yield engine


def test_importing_registry_does_not_import_torch_or_qt():
    code = ("import sys, engines.registry as r; r.all_engines(); "
            "bad = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'vtkmodules') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shipped_engines_are_discovered_and_toy_is_not():
    ids = registry.ids()
    assert "toy" not in ids
    assert set(ids) <= set(registry.KNOWN_ENGINES)
    for engine_id in ids:
        assert registry.get(engine_id).id == engine_id
    assert registry.failures() == {}


def test_register_get_applicable_and_unregister(toy):
    assert registry.get("toy") is toy
    assert registry.ids()[-1] == "toy"
    grey2d = Volume(np.zeros((8, 8), np.float32), modality="CT")
    assert toy in registry.applicable(grey2d)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ToyEngine())
    registry.unregister("toy")
    assert "toy" not in registry.ids()
    with pytest.raises(EngineError, match="No engine 'toy'"):
        registry.get("toy")


def test_applicable_filters_by_dimension_and_modality():
    ct3d = Volume(np.zeros((4, 8, 8), np.int16), modality="CT")
    cxr = Volume(np.zeros((64, 64), np.uint8), modality="DX")
    for e in registry.applicable(ct3d):
        assert 3 in e.dims
    for e in registry.applicable(cxr):
        assert 2 in e.dims and (cxr.modality in e.modalities or "*" in e.modalities)
    if "multires_cxr" in registry.ids():
        assert registry.get("multires_cxr") in registry.applicable(cxr)
        assert registry.get("multires_cxr") not in registry.applicable(ct3d)


def test_register_refuses_non_engines():
    with pytest.raises(TypeError):
        registry.register(object())  # type: ignore[arg-type]
