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
