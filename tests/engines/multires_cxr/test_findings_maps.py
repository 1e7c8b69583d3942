"""Issue 18 for multires_cxr: labels the data supports, maps inside the lungs (not mirrored), scores not pinned.

Shipped weights on a few held-out images of the committed patient-wise split; floors, not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.common.cxr import load_rows, read_png
from engines.common.cxr_findings import SUPPORTED, counts, finding_labels, supported
from engines.common.image import resize_mask
from engines.common.metrics import dice
from engines.multires_cxr.engine import MultiResCXREngine
from engines.multires_cxr.evaluate import youden_threshold
from engines.multires_cxr.lse_lba import lse_lba
from engines.multires_cxr.prepare import SPLIT_FILE
from tests.engines.one_thread import one_torch_thread  # noqa: F401  (fixture)
from viewer.model.volume import Volume

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _held_out(cxr: Path, with_mask: bool, k: int) -> list[str]:
    names = json.loads(SPLIT_FILE.read_text())["test"]
    if with_mask:
        names = [n for n in names if (cxr / "lung_masks" / f"{Path(n).stem}_mask.png").exists()]
    return names[:k]


@pytest.fixture(scope="module")
def engine() -> MultiResCXREngine:
    return MultiResCXREngine(top_k=1)


def test_kept_labels_are_those_with_validation_support(shared_data: Path) -> None:
    rows = load_rows(shared_data / "cxr")
    split = json.loads(SPLIT_FILE.read_text())
    test = set(split["test"])
    y = np.stack([finding_labels(r["finding"], r["clinical_notes"]) for r in rows if r["filename"] in test])
    assert supported(y) == SUPPORTED
    c = counts(y)
    assert all(c[n]["pos"] >= 8 and c[n]["neg"] >= 8 for n in SUPPORTED)
    assert MultiResCXREngine().load().config.labels == SUPPORTED


def test_map_mass_lies_inside_the_lung_mask_and_is_not_mirrored(shared_data: Path,
                                                                engine: MultiResCXREngine) -> None:
    cxr = shared_data / "cxr"
    inside, d_same, d_flip = [], [], []
    for name in _held_out(cxr, with_mask=True, k=4):
        img = read_png(cxr / "images" / name)
        gt = read_png(cxr / "lung_masks" / f"{Path(name).stem}_mask.png") > 127
        res = engine.run(Volume(img.astype(np.float32), modality="OT", spacing_known=False))
        ov = res.overlays[0]
        m = ov.volume.array.astype(np.float64)
        g = resize_mask(gt, m.shape[0]).astype(np.float64)
        assert m.max() > 0
        inside.append((m * g).sum() / m.sum())
        d_same.append(dice(m > 0, g > 0))
        d_flip.append(dice(m[:, ::-1] > 0, g > 0))
    assert min(inside) > 0.8, inside
    assert np.mean(d_same) > 0.8 and np.mean(d_same) > np.mean(d_flip), (d_same, d_flip)


def test_probabilities_are_not_pinned_nor_constant(shared_data: Path, engine: MultiResCXREngine) -> None:
    cxr = shared_data / "cxr"
    scores = []
    for name in _held_out(cxr, with_mask=False, k=8):
        img = read_png(cxr / "images" / name)
        scores.append(list(engine.run(Volume(img, modality="OT", spacing_known=False)).scores.values()))
    s = np.array(scores)
    assert ((s > 0.02) & (s < 0.98)).mean() >= 0.6
    assert s.std(axis=0).max() > 0.02  # some finding's score changes from image to image


def test_lse_lba_region_pools_only_inside() -> None:
    s = torch.zeros(1, 1, 4, 4)
    s[0, 0, 0, 0] = 10.0  # outside the region: must not count
    region = torch.zeros(1, 1, 4, 4)
    region[0, 0, 2:, 2:] = 1
    s[0, 0, 3, 3] = 1.0
    r = torch.tensor([2.0])
    want = (np.log((3 * np.exp(0.0) + np.exp(2.0)) / 4)) / 2
    assert float(lse_lba(s, r, region)) == pytest.approx(want, rel=1e-6)
    assert float(lse_lba(s, r, torch.zeros(1, 1, 4, 4))) == pytest.approx(float(lse_lba(s, r)))


def test_youden_threshold_hand_computed() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.3, 0.35, 0.8, 0.4, 0.9])
    # t = 0.35: sens 1, spec 2/3 (J 0.67); t = 0.8: sens 2/3, spec 1 (J 0.67) -> the first is kept
    assert youden_threshold(y, p) == pytest.approx(0.35)
    assert youden_threshold(np.ones(3), np.array([0.1, 0.2, 0.3])) == 0.5
