"""Lung-field model: Dice on held-out lungVAE masks above a floor, mirrored input gives a mirrored mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.common.lung_fields import DEFAULT_WEIGHTS, SPLIT_FILE, keep_largest, lung_field_mask
from engines.common.metrics import dice
from tests.engines.one_thread import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _held_out_with_mask(cxr: Path, k: int) -> list[str]:
    names = json.loads(SPLIT_FILE.read_text())["test"]
    return [n for n in names if (cxr / "lung_masks" / f"{Path(n).stem}_mask.png").exists()][:k]


def _read(path: Path) -> np.ndarray:
    from engines.common.cxr import read_png

    return read_png(path)


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    cxr = shared_data / "cxr"
    out = []
    for n in _held_out_with_mask(cxr, 4):
        out.append((_read(cxr / "images" / n), _read(cxr / "lung_masks" / f"{Path(n).stem}_mask.png") > 127))
    assert len(out) == 4
    return out


def test_shipped_weights_and_card() -> None:
    from engines.weights import sha256_file

    card = json.loads((DEFAULT_WEIGHTS.parent / "card.json").read_text())
    assert card["sha256"] == sha256_file(DEFAULT_WEIGHTS)
    assert card["validation"]["verdict"] in ("better", "not better", "below")


def test_dice_on_held_out_masks(cases: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for image, gt in cases:
        m = lung_field_mask(image)
        assert m.shape == image.shape and m.dtype == bool
        assert dice(m, gt) > 0.8


def test_mirrored_input_gives_mirrored_mask(cases: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for image, gt in cases[:2]:
        m = lung_field_mask(image)
        flipped = lung_field_mask(image[:, ::-1].copy())
        assert dice(flipped, gt[:, ::-1]) > 0.8
        assert dice(flipped, m[:, ::-1]) > 0.85
        # a left-right asymmetric anatomy: the flip must matter for at least one image pair
    assert np.mean([dice(lung_field_mask(im), g[:, ::-1]) for im, g in cases]) < \
        np.mean([dice(lung_field_mask(im), g) for im, g in cases])


def test_empty_background_is_not_lung(cases: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, _ = cases[0]
    m = lung_field_mask(image)
    h, w = m.shape
    border = np.concatenate([m[: h // 20].ravel(), m[-h // 20:].ravel(), m[:, : w // 20].ravel(),
                             m[:, -w // 20:].ravel()])
    assert border.mean() < 0.02
    assert 0.1 < m.mean() < 0.6


def test_keep_largest_keeps_two_biggest_pieces() -> None:
    m = np.zeros((20, 20), bool)
    m[1:9, 1:5] = True   # 32 px
    m[1:9, 10:15] = True  # 40 px
    m[15:17, 15:17] = True  # 4 px (noise)
    k = keep_largest(m)
    assert k.sum() == 72 and not k[15, 15] and k[1, 1] and k[1, 10]


# Held-out (test side of the split) films with dense consolidation and a lungVAE mask: lobar pneumonia of the right
# upper + lower lobes, and right lower lobe pneumonia with loss of the hemidiaphragm. The gate trained on aerated
# lung cut the consolidation out (0.76 and 0.87 of the filled lung field covered).
CONSOLIDATION_CASES = ("streptococcus-pneumoniae-pneumonia-1.png", "pneumonia-7.png")


@pytest.mark.parametrize("name", CONSOLIDATION_CASES)
def test_gate_keeps_consolidated_lung(shared_data: Path, name: str) -> None:
    from engines.common.image import resize_mask
    from engines.common.lung_fields import fill_fields

    cxr = shared_data / "cxr"
    assert name in json.loads(SPLIT_FILE.read_text())["test"]
    image = _read(cxr / "images" / name)
    lung = _read(cxr / "lung_masks" / f"{Path(name).stem}_mask.png") > 127
    size = 256
    target = fill_fields(resize_mask(lung, size).astype(bool))
    gate = resize_mask(lung_field_mask(image), size).astype(bool)
    covered = (gate & target).sum() / target.sum()
    outside = (gate & ~target).sum() / gate.sum()
    assert covered >= 0.9, f"{name}: the gate covers only {covered:.2f} of the filled lung field"
    assert outside <= 0.15, f"{name}: {outside:.2f} of the gate lies outside the filled lung field"


def test_fill_fields_hulls_each_lung_without_bridging() -> None:
    from engines.common.lung_fields import fill_fields

    m = np.zeros((40, 40), bool)
    m[5:35, 3:15] = True
    m[15:25, 8:15] = False          # a bite out of the "right lung" (consolidation), open to the medial side
    m[5:35, 25:37] = True
    m[18:22, 28:32] = False         # a hole in the "left lung"
    f = fill_fields(m)
    assert f[15:25, 8:15].all() and f[18:22, 28:32].all()
    assert not f[:, 16:24].any()    # the mediastinum between the lungs stays out
    assert (f >= m).all()
