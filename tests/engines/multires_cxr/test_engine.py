"""The Lucent engine: shipped weights, real inference, overlay geometry, bad input, cancel."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engines.base import Cancelled, EngineError
from engines.multires_cxr.engine import DEFAULT_WEIGHTS, MultiResCXREngine, map_to_image_matrix
from viewer.model.volume import Volume


def test_import_is_cheap() -> None:
    import subprocess

    code = "import sys, engines.multires_cxr.engine as m; assert m.ENGINE_CLASS.id == 'multires_cxr'; " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "False"


def test_map_pixel_centres_land_on_image() -> None:
    m = map_to_image_matrix((64, 64), (512, 400))  # rows, cols
    s_u, s_v = 400 / 64, 512 / 64
    for u, v in [(0, 0), (5, 9), (63, 63)]:
        i, j, _, _ = m @ np.array([u, v, 0, 1.0])
        assert i == pytest.approx((u + 0.5) * s_u - 0.5) and j == pytest.approx((v + 0.5) * s_v - 0.5)
    # map edges (−0.5 and n − 0.5) fall on the image edges
    assert (m @ np.array([-0.5, -0.5, 0, 1]))[:2] == pytest.approx([-0.5, -0.5])
    assert (m @ np.array([63.5, 63.5, 0, 1]))[:2] == pytest.approx([399.5, 511.5])


def test_shipped_weights_load_strict() -> None:
    from engines.multires_cxr.weights_io import load_model, sha256

    card = MultiResCXREngine.card()
    assert card["sha256"] == sha256(DEFAULT_WEIGHTS)
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    model = load_model(DEFAULT_WEIGHTS)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert "research demo weights, not for clinical use" in card["intended_use"]


def test_wrong_weights_file_names_key(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from engines.multires_cxr.model import CONFIGS, MultiResCXR
    from engines.multires_cxr.weights_io import save_weights

    p = tmp_path / "bad.safetensors"
    model = MultiResCXR(CONFIGS["demo"])
    save_weights(model, p, CONFIGS["demo"])
    from safetensors.torch import load_file

    sd = load_file(str(p))
    del sd["fuse.weight"]
    save_file(sd, str(p), metadata={"config": __import__("json").dumps(CONFIGS["demo"].to_dict())})
    eng = MultiResCXREngine(p)
    with pytest.raises(EngineError, match="fuse.weight"):
        eng.load()
    torch.save({}, tmp_path / "x.pt")
    with pytest.raises(EngineError, match="safetensors"):
        MultiResCXREngine(tmp_path / "x.pt").load()


def _png_volume(path: Path) -> Volume:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"))
    aff = np.diag([0.5, 0.5, 1.0, 1.0])
    return Volume(arr, affine=aff, modality="OT", spacing_known=False)


def test_real_png_gives_nontrivial_maps(shared_data: Path) -> None:
    from engines.common.cxr_findings import SUPPORTED

    vol = _png_volume(shared_data / "cxr" / "images" / "ARDSSevere.png")
    steps: list[float] = []
    res = MultiResCXREngine().run(vol, progress=lambda f, m: steps.append(f))
    assert tuple(res.scores) == SUPPORTED
    assert all(0.0 <= p <= 1.0 for p in res.scores.values())
    assert len(res.overlays) == 3 and steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    top = sorted(res.scores, key=res.scores.get, reverse=True)[:3]
    assert [o.volume.metadata["finding"] for o in res.overlays] == top
    assert [o.visible for o in res.overlays] == [True, False, False]  # three stacked maps would hide the film
    assert any(n.startswith("Side check:") for n in res.notes)  # the shipped side check, in the Results dock
    for ov in res.overlays:
        a = ov.volume.array
        assert ov.kind == "saliency" and "LSE-LBA" in ov.legend and ov.value_range == (0.0, 1.0)
        assert ov.units == "probability" and ov.threshold is not None and 0.0 < ov.threshold < 1.0
        # absolute scale (no per-image min-max): values are probabilities, zero outside the lung fields
        assert np.isfinite(a).all() and a.min() == 0.0 and a.max() <= 1.0 and a.std() > 0.01
        assert (a == 0).mean() > 0.3
        # map centre (u, v) → image centre in patient mm through both affines
        h, w = vol.array.shape
        n = a.shape[0]
        c_map = ov.volume.index_to_patient(np.array([(n - 1) / 2, (n - 1) / 2, 0]))
        c_img = vol.index_to_patient(np.array([(w - 1) / 2, (h - 1) / 2, 0]))
        np.testing.assert_allclose(c_map, c_img, atol=1e-9)


def test_rgb_input_is_accepted(shared_data: Path) -> None:
    vol = _png_volume(shared_data / "cxr" / "images" / "ARDSSevere.png")
    rgb = Volume(np.repeat(vol.array[..., None], 3, axis=-1), modality="OT", rgb=True)
    res = MultiResCXREngine(top_k=1).run(rgb)
    assert len(res.overlays) == 1


def test_bad_input() -> None:
    eng = MultiResCXREngine()
    with pytest.raises(EngineError, match="2D"):
        eng.run(Volume(np.zeros((4, 64, 64), np.float32), modality="CR"))
    with pytest.raises(EngineError, match="empty"):
        eng.run(Volume(np.zeros((0, 64), np.float32), modality="CR"))
    nan = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    nan[3, 3] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        eng.run(Volume(nan, modality="DX"))
    with pytest.raises(EngineError, match="constant"):
        eng.run(Volume(np.full((64, 64), 7, np.uint8), modality="CR"))
    with pytest.raises(EngineError, match="MR"):
        eng.run(Volume(np.ones((64, 64), np.uint8), modality="MR"))
    with pytest.raises(EngineError, match="too small"):
        eng.run(Volume(np.arange(100, dtype=np.float32).reshape(10, 10), modality="CR"))


def test_cancel_raises() -> None:
    img = np.random.default_rng(1).random((128, 128)).astype(np.float32)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(Cancelled):
        MultiResCXREngine().run(Volume(img, modality="CR"), cancelled=cancelled)


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_J2KR.dcm"])
def test_dicom_chest_cr(shared_data: Path, name: str) -> None:
    """The chest CR files (MONOCHROME1, inverted by the reader) run end to end; unlabelled, so no score check."""
    from viewer.io import load_volume

    vol = load_volume(shared_data / "dicom" / "misc" / name)
    eng = MultiResCXREngine()
    assert eng.applies_to(vol)
    res = eng.run(vol)
    assert len(res.scores) == 5
    a = res.overlays[0].volume.array
    assert np.isfinite(a).all() and a.std() > 0.01
