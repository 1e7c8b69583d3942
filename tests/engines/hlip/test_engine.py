"""The Lucent engine: heatmap geometry, shipped weights, real inference, cache, bad input, cancel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.base import Cancelled, EngineError
from engines.hlip.engine import DEFAULT_WEIGHTS, HLIPEngine, token_to_voxel_matrix
from viewer.model.volume import Volume


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny-config weights file (16×32×32 scans, 3 blocks: slice, scan, study)."""
    import torch

    from engines.hlip.configs import get_config
    from engines.hlip.model import HLIP
    from engines.hlip.weights_io import save_weights

    torch.manual_seed(0)
    cfg = get_config("tiny")
    p = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(HLIP(cfg), p, cfg)
    return p


def _synthetic(shape=(20, 40, 48), modality="MR", seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    a = rng.normal(100, 20, size=shape).astype(np.float32)
    aff = np.diag([0.9, 0.8, 2.5, 1.0])
    aff[:3, 3] = [-10, 5, 30]
    return Volume(a, affine=aff, modality=modality)


def test_import_is_cheap() -> None:
    code = "import sys, engines.hlip.engine as m; assert m.ENGINE_CLASS.id == 'hlip'; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "False"


def test_engine_description_and_registry() -> None:
    from engines import registry

    eng = registry.get("hlip") if hasattr(registry, "get") else HLIPEngine()
    assert eng.takes_query and eng.dims == (2, 3) and set(eng.modalities) == {"MR", "CT", "OT", "XC"}
    assert "similarity" in eng.outputs and "scores" in eng.outputs
    grey_2d = Volume(np.zeros((8, 8), np.uint8))  # OT, as a grey PNG opens
    grey_rgb = Volume(np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, -1), modality="XC", rgb=True)
    photo = Volume(np.random.default_rng(0).integers(0, 255, (8, 8, 3)).astype(np.uint8), modality="XC", rgb=True)
    assert eng.applies_to(_synthetic()) and eng.applies_to(grey_2d) and eng.applies_to(grey_rgb)
    assert not eng.applies_to(photo) and not eng.applies_to(_synthetic(modality="CR"))


def test_patch_centre_lands_on_the_right_voxel() -> None:
    """Token (u, v, w) of a 6×6×6 grid over a 155×240×240 scan: centre at ((u+½)·40−½, (v+½)·40−½, (w+½)·155/6−½)."""
    m = token_to_voxel_matrix((6, 6, 6), (155, 240, 240))
    assert (m @ [0, 0, 0, 1])[:3] == pytest.approx([19.5, 19.5, 155 / 12 - 0.5])  # centre of voxels 0..39
    for u, v, w in [(1, 2, 3), (5, 5, 5)]:
        i, j, k, _ = m @ np.array([u, v, w, 1.0])
        assert (i, j, k) == pytest.approx(((u + 0.5) * 40 - 0.5, (v + 0.5) * 40 - 0.5, (w + 0.5) * 155 / 6 - 0.5))
    # grid edges (−½ and n−½) fall on the scan's edges
    assert (m @ [-0.5, -0.5, -0.5, 1])[:3] == pytest.approx([-0.5, -0.5, -0.5])
    assert (m @ [5.5, 5.5, 5.5, 1])[:3] == pytest.approx([239.5, 239.5, 154.5])


def test_overlay_affine_maps_token_centres_into_patient_space(tiny_weights: Path) -> None:
    vol = _synthetic()
    res = HLIPEngine(tiny_weights).run(vol, query="glioma")
    ov = res.overlays[0]
    assert ov.kind == "similarity" and ov.volume.array.shape == (16, 32, 32)  # the tiny model's input grid
    # model-grid voxel (1, 0, 1) → input voxel ((1.5)·48/32 − ½, 0.5·40/32 − ½, 1.5·20/16 − ½) → patient
    want = vol.affine @ np.array([1.5 * 48 / 32 - 0.5, 0.5 * 40 / 32 - 0.5, 1.5 * 20 / 16 - 0.5, 1.0])
    assert ov.volume.affine @ np.array([1, 0, 1, 1.0]) == pytest.approx(want)
    assert sum(v for k, v in res.scores.items() if not k.startswith("“")) == pytest.approx(1.0, abs=1e-5)


def test_shipped_weights_load_strict() -> None:
    from engines.weights import ModelCard, load_into, load_safetensors

    card = ModelCard.load("hlip")
    assert card.problems() == []
    eng = HLIPEngine()
    model = eng.load()  # sha256 from the card + strict
    sd = load_safetensors(DEFAULT_WEIGHTS, card.sha256)
    assert load_into(model, sd, DEFAULT_WEIGHTS, strict=True) == ([], [])
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 1024 * 1024


def test_real_brats_flair_scores_heatmap_and_cache(brats_flair: Volume) -> None:
    eng = HLIPEngine()
    steps: list[str] = []
    res = eng.run(brats_flair, progress=lambda f, m: steps.append(m))
    first, *rest = res.scores  # the calibrated study-level 2-way score comes first
    assert first.startswith("“glioma” vs “no glioma”") and 0.02 < res.scores[first] < 0.98
    assert rest == list(eng.classes) and sum(res.scores[c] for c in rest) == pytest.approx(1.0, abs=1e-5)
    assert any("block 6/6 (study attention)" in s for s in steps) and any("scan 1/1" in s for s in steps)
    ov = res.overlays[0]
    m = ov.volume.array
    assert m.shape == (48, 96, 96) and np.isfinite(m).all() and float(m.std()) > 1e-3
    assert 0.0 <= m.min() <= m.max() <= 1.0 and ov.value_range == (0.0, 1.0) and ov.threshold == 0.5
    assert ov.units == "probability" and "no significant abnormalities" in ov.legend
    assert not ov.visible and any("hidden by default" in n for n in res.notes)  # not validated
    assert any("temperature" in n for n in res.notes)
    centre = ov.volume.affine @ np.array([47.5, 47.5, 23.5, 1.0])  # model-grid centre = scan centre
    assert centre[:3] == pytest.approx((brats_flair.affine @ np.array([119.5, 119.5, 77.0, 1.0]))[:3])
    # a second query on the same study reuses the cached image side
    res2 = eng.run(brats_flair, query="tumour in the left hemisphere")
    assert eng.last_timing["image_s"] < 0.5
    q = [k for k in res2.scores if k.startswith("“tumour")]
    assert len(q) == 1 and 0.0 <= res2.scores[q[0]] <= 1.0
    assert not np.array_equal(res2.overlays[0].volume.array, m)


def test_two_scan_study_gives_one_overlay_per_scan(tiny_weights: Path) -> None:
    eng = HLIPEngine(tiny_weights)
    res = eng.run_study([_synthetic(seed=1), _synthetic(seed=2)], query="glioma")
    assert len(res.overlays) == 2 and all(o.volume.array.shape == (16, 32, 32) for o in res.overlays)


@pytest.mark.parametrize("bad", ["2d constant", "nan", "constant", "rgb", "colour photo", "tiny"])
def test_bad_input_gives_clear_error(tiny_weights: Path, bad: str) -> None:
    eng = HLIPEngine(tiny_weights)
    vol = {
        "2d constant": lambda: Volume(np.ones((64, 64), np.float32), modality="MR"),
        "nan": lambda: Volume(np.where(np.arange(20 * 40 * 48).reshape(20, 40, 48) == 7, np.nan, 1.0)
                              .astype(np.float32), modality="MR"),
        "constant": lambda: Volume(np.full((20, 40, 48), 5.0, np.float32), modality="MR"),
        "rgb": lambda: Volume(np.zeros((4, 20, 20, 3), np.uint8), modality="MR", rgb=True),
        "colour photo": lambda: Volume(np.random.default_rng(1).integers(0, 255, (40, 40, 3)).astype(np.uint8),
                                       modality="XC", rgb=True),
        "tiny": lambda: Volume(np.random.default_rng(0).random((4, 8, 8)).astype(np.float32), modality="MR"),
    }[bad]()
    with pytest.raises(EngineError):
        eng.run(vol)


def test_wrong_modality_and_missing_or_pickled_weights(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="takes MR, CT, OT, XC"):
        HLIPEngine(tiny_weights).run(_synthetic(modality="CR"))
    with pytest.raises(EngineError, match="not found"):
        HLIPEngine(tmp_path / "none.safetensors").run(_synthetic())
    with pytest.raises(EngineError, match="safetensors"):
        HLIPEngine(tmp_path / "model.pt").run(_synthetic())


def test_cancel_between_blocks_raises_cancelled(tiny_weights: Path) -> None:
    eng = HLIPEngine(tiny_weights)
    seen: list[str] = []
    with pytest.raises(Cancelled):
        eng.run(_synthetic(), progress=lambda f, m: seen.append(m),
                cancelled=lambda: any(m.startswith("block 1/") for m in seen))
    assert not any(m.startswith("block 2/") for m in seen)
    assert eng._cache == {}  # nothing half-made was kept
