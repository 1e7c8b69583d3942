"""The Lucent engine: shipped weights, real inference, overlay geometry, bad input, cancel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.base import Cancelled, EngineError
from engines.common.geometry import map_to_image_matrix
from engines.dermae.engine import DEFAULT_WEIGHTS, DermaeEngine
from viewer.model.volume import Volume

REPO = Path(__file__).resolve().parents[3]


def test_import_is_cheap_and_registered() -> None:
    code = ("import sys, engines.dermae.engine as m; assert m.ENGINE_CLASS.id == 'dermae'; "
            "from engines import registry; assert 'dermae' in registry.KNOWN_ENGINES; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_offered_for_colour_photos_only() -> None:
    photo = Volume(np.zeros((32, 32, 3), np.uint8), np.eye(4), modality="OT", rgb=True)
    grey = Volume(np.zeros((32, 32), np.uint8), np.eye(4), modality="OT")  # a radiograph exported as PNG
    assert DermaeEngine().applies_to(photo) and not DermaeEngine().applies_to(grey)


def test_shipped_weights_load_strict() -> None:
    from engines.dermae.weights_io import load_model, sha256

    card = DermaeEngine.card()
    assert card["sha256"] == sha256(DEFAULT_WEIGHTS)
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    model = load_model(DEFAULT_WEIGHTS, "student", expected_sha256=card["sha256"])
    assert sum(p.numel() for p in model.parameters()) == card["params"]["student"]
    teacher = DEFAULT_WEIGHTS.with_name(card["teacher"]["weights_file"])
    assert sha256(teacher) == card["teacher"]["sha256"] and teacher.stat().st_size <= 25 * 2**20
    load_model(teacher, "teacher")
    assert "research demo weights, not for clinical use" in card["intended_use"]
    assert (DEFAULT_WEIGHTS.parent / "contact_sheet.png").exists()


def test_wrong_weights_file_names_key(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from engines.dermae.model import CONFIGS, StudentCNN
    from engines.dermae.weights_io import save_weights

    p = tmp_path / "bad.safetensors"
    save_weights(StudentCNN(CONFIGS["demo"]), p, CONFIGS["demo"], "student")
    sd = load_file(str(p))
    del sd["head.weight"]
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata()
    save_file(sd, str(p), metadata=meta)
    with pytest.raises(EngineError, match="head.weight"):
        DermaeEngine(p).load()
    torch.save({}, tmp_path / "x.pt")
    with pytest.raises(EngineError, match="safetensors"):
        DermaeEngine(tmp_path / "x.pt").load()


def _photo(derm_data: Path, image_id: str = "ISIC_0000009") -> Volume:
    from viewer.io import load_volume

    path = derm_data / "images" / f"{image_id}.jpg"
    if not path.exists():
        path = sorted((derm_data / "images").glob("*.jpg"))[0]
    return load_volume(path)


def test_inference_on_real_photo(derm_data: Path) -> None:
    vol = _photo(derm_data)
    assert vol.rgb and vol.modality == "XC"
    steps: list[float] = []
    res = DermaeEngine().run(vol, progress=lambda f, m: steps.append(f))
    p = np.array(list(res.scores.values()))
    assert set(res.scores) == {"melanoma", "seborrheic keratosis", "nevus"}
    assert p.sum() == pytest.approx(1.0, abs=1e-6) and np.all((p >= 0) & (p <= 1))
    sal = res.overlays[0]
    assert sal.kind == "saliency" and "Grad-CAM" in sal.legend and "Grad-CAM" in sal.name
    m = sal.volume.array
    n = 128  # the map is on the network's grid (128 px for the shipped student)
    assert m.shape == (n, n) and np.all(np.isfinite(m)) and m.std() > 0 and m.min() >= 0 and m.max() <= 1
    assert sal.value_range == (0.0, 1.0) and sal.threshold is not None and 0 < sal.threshold < 1
    # pixel-centre mapping: map edges land on the image edges
    assert np.allclose(sal.volume.affine, vol.affine @ map_to_image_matrix((n, n), (256, 256)))
    assert (sal.volume.affine @ [-0.5, -0.5, 0, 1])[:2] == pytest.approx([-0.5, -0.5])
    assert (sal.volume.affine @ [n - 0.5, n - 0.5, 0, 1])[:2] == pytest.approx([255.5, 255.5])
    masks = [o for o in res.overlays if o.kind == "mask"]
    assert masks and masks[0].volume.array.shape == (256, 256) and masks[0].volume.array.max() == 1
    assert masks[0].volume.metadata["display"] == "outline"  # the lesion stays visible inside its outline
    assert steps[0] == 0.0 and steps[-1] == 1.0


def test_bad_input_gives_clear_errors() -> None:
    eng = DermaeEngine()
    grey = Volume(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), modality="OT")
    with pytest.raises(EngineError, match="colour"):
        eng.run(grey)
    vol3d = Volume(np.zeros((4, 64, 64), np.int16), modality="CT")
    with pytest.raises(EngineError, match="2D"):
        eng.run(vol3d)
    rgb_ct = Volume(np.zeros((64, 64, 3), np.uint8), modality="CT", rgb=True)
    with pytest.raises(EngineError, match="XC"):
        eng.run(rgb_ct)
    with pytest.raises(EngineError, match="too small"):
        eng.run(Volume(np.full((8, 8, 3), 7, np.uint8), modality="XC", rgb=True))
    with pytest.raises(EngineError, match="constant"):
        eng.run(Volume(np.full((64, 64, 3), 7, np.uint8), modality="XC", rgb=True))
    with pytest.raises(EngineError, match="NaN"):
        eng.run(Volume(np.full((64, 64, 3), np.nan, np.float32), modality="XC", rgb=True))
    with pytest.raises(EngineError, match="empty"):
        eng.run(Volume(np.zeros((0, 64, 3), np.uint8), modality="XC", rgb=True))


def test_cancel_raises_cancelled(derm_data: Path) -> None:
    vol = _photo(derm_data)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(Cancelled):
        DermaeEngine().run(vol, cancelled=cancelled)
    with pytest.raises(Cancelled):
        DermaeEngine().run(vol, cancelled=lambda: True)
