"""The Lucent engine: shipped weights, real inference on the input grid, bad input, cancel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.base import Cancelled, EngineError
from engines.rasalore.engine import DEFAULT_WEIGHTS, RASALoREEngine
from viewer.model.volume import Volume


def test_import_is_cheap() -> None:
    code = "import sys, engines.rasalore.engine as m; assert m.ENGINE_CLASS.id == 'rasalore'; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "False"


def test_shipped_weights_load_strict() -> None:
    from engines.rasalore.weights_io import load_stage2
    from engines.weights import sha256_file

    card = RASALoREEngine.card()
    assert card["sha256"] == sha256_file(DEFAULT_WEIGHTS)
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    model = load_stage2(DEFAULT_WEIGHTS, card["sha256"])
    assert sum(p.numel() for p in model.parameters()) < 8_000_000
    assert "research demo weights, not for clinical use" in card["intended_use"]


def test_wrong_weights_file_names_key(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from engines.rasalore.model import CONFIGS, RASALoRE
    from engines.rasalore.weights_io import read_meta, save_weights

    p = tmp_path / "bad.safetensors"
    save_weights(RASALoRE(CONFIGS["demo"]), p, "rasalore", CONFIGS["demo"].to_dict())
    sd, meta = load_file(str(p)), read_meta(p)
    del sd["decoder.norm2.weight"]
    save_file(sd, str(p), metadata=meta)
    with pytest.raises(EngineError, match="decoder.norm2.weight"):
        RASALoREEngine(p).load()
    torch.save({}, tmp_path / "x.pt")
    with pytest.raises(EngineError, match="safetensors"):
        RASALoREEngine(tmp_path / "x.pt").load()


def _flair_slab(brain_dir: Path, k0: int = 60, k1: int = 100) -> tuple[Volume, Volume]:
    """Slices k0:k1 of the held-out patient's FLAIR (affine shifted accordingly) and the full volume."""
    from viewer.io import load_volume

    full = load_volume(brain_dir / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz")
    shift = np.eye(4)
    shift[2, 3] = k0
    slab = Volume(np.ascontiguousarray(full.array[k0:k1]), affine=full.affine @ shift, modality="MR",
                  metadata={})
    return slab, full


def test_real_flair_gives_mask_on_input_grid(brain_dir: Path) -> None:
    vol, _ = _flair_slab(brain_dir)
    fractions: list[float] = []
    res = RASALoREEngine().run(vol, progress=lambda f, m: fractions.append(f))
    mask = next(o for o in res.overlays if o.kind == "mask")
    sal = next(o for o in res.overlays if o.kind == "saliency")
    assert mask.volume.array.shape == vol.array.shape and np.array_equal(mask.volume.affine, vol.affine)
    assert sal.volume.array.shape == vol.array.shape and np.array_equal(sal.volume.affine, vol.affine)
    m = mask.volume.array
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    assert 0 < m.sum() < 0.5 * m.size  # non-empty, non-full
    assert mask.label_names == {1: "tumour (whole)"}
    s = sal.volume.array
    assert np.isfinite(s).all() and s.min() >= 0 and s.max() <= 1 and s.std() > 0
    assert 0 <= res.scores["tumour present"] <= 1
    from engines.rasalore.engine import BATCH

    # progress after every batch of BATCH slices
    assert len(fractions) >= vol.array.shape[0] * 0.5 / BATCH and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_bad_input_is_refused() -> None:
    eng = RASALoREEngine()
    with pytest.raises(EngineError, match="3D|2D"):
        eng.run(Volume(np.zeros((240, 240), np.float32), modality="MR"))
    with pytest.raises(EngineError, match="CT"):
        eng.run(Volume(np.zeros((20, 128, 128), np.int16), modality="CT"))
    hu = np.full((20, 128, 128), -1024, np.int16)
    hu[:, 30:90, 30:90] = 40
    with pytest.raises(EngineError, match="CT"):
        eng.run(Volume(hu, modality="OT"))
    nan = np.random.default_rng(0).random((20, 128, 128)).astype(np.float32)
    nan[5, 5, 5] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        eng.run(Volume(nan, modality="MR"))
    with pytest.raises(EngineError, match="too small"):
        eng.run(Volume(np.ones((20, 32, 32), np.float32), modality="MR"))
    with pytest.raises(EngineError, match="brain"):
        eng.run(Volume(np.zeros((20, 128, 128), np.float32), modality="MR"))
    with pytest.raises(EngineError):
        eng.run(Volume(np.zeros((20, 128, 128, 3), np.uint8), modality="MR", rgb=True))


def test_cancel_between_slices(brain_dir: Path) -> None:
    vol, _ = _flair_slab(brain_dir, 70, 90)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(Cancelled):
        RASALoREEngine().run(vol, cancelled=cancelled)
    assert calls["n"] == 5  # stopped at the first poll after cancel, mid-volume
