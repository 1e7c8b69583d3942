"""Test-time augmentation: the 8-view mean is invariant to turning/mirroring the photo, and the engine uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.dermae.data import resize_rgb, to_tensor
from engines.dermae.engine import DEFAULT_WEIGHTS, DermaeEngine
from engines.dermae.model import CONFIGS, StudentCNN
from engines.dermae.tta import N_VIEWS, dihedral_views, tta_logits
from engines.dermae.weights_io import load_model
from viewer.model.volume import Volume


def _turns(x: torch.Tensor) -> list[torch.Tensor]:
    """Rotations by 90/180/270°, horizontal and vertical flips and the transpose of ``x [B, C, S, S]``."""
    return [torch.rot90(x, 1, (2, 3)), torch.rot90(x, 2, (2, 3)), torch.rot90(x, 3, (2, 3)), x.flip(3), x.flip(2),
            x.transpose(2, 3)]


def test_views_are_the_dihedral_group() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = dihedral_views(x)
    assert len(views) == N_VIEWS and torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == N_VIEWS  # 8 distinct views


def test_tta_is_invariant_to_rotation_and_flip() -> None:
    """A random (untrained) student is not invariant on one view; its 8-view mean is, to float tolerance."""
    torch.manual_seed(0)
    model = StudentCNN(CONFIGS["demo"]).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 10.0)  # logits large enough that a single view visibly depends on the turn
    s = int(model.image_size)
    ramp = torch.linspace(-2, 2, s)
    x = torch.randn(2, 3, s, s) + ramp[None, None, :, None] * ramp[None, None, None, :].clamp(min=0)
    ref = tta_logits(model, x)
    with torch.no_grad():
        single = model(x)
        assert max(float((model(t) - single).abs().max()) for t in _turns(x)) > 1e-3  # the check is not vacuous
    for t in _turns(x):
        assert torch.allclose(tta_logits(model, t), ref, atol=1e-5, rtol=1e-5)


def _real_photo(derm_data: Path, size: int) -> np.ndarray:
    from engines.dermae.prepare import read_rgb

    return resize_rgb(read_rgb(derm_data / "images" / "ISIC_0000009.jpg"), size)


def test_shipped_student_tta_invariant_on_a_real_photo(derm_data: Path) -> None:
    model = load_model(DEFAULT_WEIGHTS, "student")
    x = to_tensor(_real_photo(derm_data, int(model.image_size))[None])
    ref = tta_logits(model, x)
    for t in _turns(x):
        assert torch.allclose(tta_logits(model, t), ref, atol=1e-4)


def test_engine_uses_tta(derm_data: Path) -> None:
    """The engine's scores are softmax(8-view mean / T), and a turned or mirrored photo gets the same scores."""
    eng = DermaeEngine()
    model = eng.load()
    photo = _real_photo(derm_data, int(model.image_size))  # at the network size: no resampling in the engine
    res = eng.run(Volume(photo, modality="XC", rgb=True))
    assert eng.uses_tta()
    t = float((eng.calibration or {}).get("temperature") or 1.0)
    want = torch.softmax(tta_logits(model, to_tensor(photo[None])).double() / t, 1)[0].numpy()
    got = np.array(list(res.scores.values()))
    assert np.allclose(got, want, atol=1e-5)
    assert res.overlays[0].volume.metadata["tta_views"] == N_VIEWS
    for turned in (np.rot90(photo, 1), np.rot90(photo, 2), photo[:, ::-1], photo[::-1]):
        r = eng.run(Volume(np.ascontiguousarray(turned), modality="XC", rgb=True))
        assert np.allclose(list(r.scores.values()), got, atol=1e-5)


def test_tta_off_for_a_calibration_fitted_on_single_views() -> None:
    eng = DermaeEngine()
    eng.calibration = {"temperature": 1.5}  # written before TTA: no "tta" key
    assert not eng.uses_tta()
    eng.calibration = {"temperature": 1.5, "tta": True}
    assert eng.uses_tta()
    eng.calibration = None  # uncalibrated weights: TTA on
    assert eng.uses_tta()


@pytest.mark.parametrize("batch", [1, 3])
def test_tta_shape(batch: int) -> None:
    model = StudentCNN(CONFIGS["demo"]).eval()
    s = int(model.image_size)
    assert tta_logits(model, torch.zeros(batch, 3, s, s)).shape == (batch, 3)
