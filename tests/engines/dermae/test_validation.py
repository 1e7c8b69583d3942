"""Issue 18: the shipped student on held-out (validation) photos is not constant, catches melanomas, is calibrated,
its map is on a fixed scale inside the lesion (not mirrored, background dark), and the card states the verdict.

Floors, not exact numbers: the evaluate command gives the full table (balanced accuracy 0.33 before issue 18).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.common.validation import verdict_of
from engines.dermae.data import CLASSES, resize_rgb, to_tensor
from engines.dermae.engine import DEFAULT_WEIGHTS, DermaeEngine
from engines.dermae.prepare import SPLIT_FILE, read_mask, read_rgb
from engines.dermae.region import centred_disc, lesion_map, lesion_region
from engines.dermae.train import balanced_idx, class_weights
from engines.dermae.tta import tta_logits
from engines.dermae.weights_io import load_model, read_calibration
from viewer.model.volume import Volume

#: floors on the validation photos below (chance is 1/3; the shipped student: melanoma recall 7/27, balanced accuracy
#: 0.40 on these 67 photos; the student before issue 18: 0/27 and 0.33)
MELANOMA_RECALL_FLOOR = 0.2
BALANCED_ACCURACY_FLOOR = 0.36
MASS_INSIDE_FLOOR = 0.7


def _validation(derm_data: Path) -> tuple[list[str], np.ndarray]:
    """Validation ids and labels: every melanoma and seborrheic keratosis, the first 20 nevi (67 photos)."""
    import csv

    split = json.loads(SPLIT_FILE.read_text())
    with open(derm_data / "labels.csv", newline="", encoding="utf-8") as fh:
        diag = {r["image_id"]: r["diagnosis"] for r in csv.DictReader(fh)}
    ids, n_nevus = [], 0
    for i in split["test"]:
        if diag[i] == "nevus":
            n_nevus += 1
            if n_nevus > 20:
                continue
        ids.append(i)
    return ids, np.array([CLASSES.index(diag[i]) for i in ids])


@pytest.fixture(scope="module")
def val_predictions(derm_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted classes) of the shipped student (8-view TTA, as the engine) on the validation photos of
    :func:`_validation`."""
    ids, y = _validation(derm_data)
    model = load_model(DEFAULT_WEIGHTS, "student")
    imgs = np.stack([resize_rgb(read_rgb(derm_data / "images" / f"{i}.jpg"), int(model.image_size)) for i in ids])
    with torch.no_grad():
        pred = tta_logits(model, to_tensor(imgs)).argmax(1).numpy()
    return y, pred


def test_prediction_is_not_constant_and_catches_melanoma(val_predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, pred = val_predictions
    assert len(np.unique(pred[:20])) >= 2 and len(np.unique(pred)) == 3
    recall = [float((pred[y == c] == c).mean()) for c in range(3)]
    assert recall[CLASSES.index("melanoma")] >= MELANOMA_RECALL_FLOOR, recall
    assert np.mean(recall) >= BALANCED_ACCURACY_FLOOR, recall
    assert min(recall) > 0.1, recall  # no class given up for another


def test_shipped_calibration_is_applied(derm_data: Path) -> None:
    cal = read_calibration(DEFAULT_WEIGHTS)
    assert cal is not None and cal["temperature"] != 1.0 and cal["map_scale_logit_units"] > 0
    from viewer.io import load_volume

    vol = load_volume(derm_data / "images" / "ISIC_0000009.jpg")
    eng = DermaeEngine()
    res = eng.run(vol)
    model = eng.load()
    x = to_tensor(resize_rgb(np.asarray(vol.array)[..., :3], int(model.image_size))[None])
    with torch.no_grad():
        want = torch.softmax(tta_logits(model, x).double() / cal["temperature"], 1)[0].numpy()
    assert cal["tta"] is True and eng.uses_tta()  # T was fitted on the 8-view logits the engine computes
    assert np.allclose(list(res.scores.values()), want, atol=1e-5)
    sal = res.overlays[0]
    assert sal.value_range == (0.0, 1.0) and sal.threshold == pytest.approx(cal["map_threshold"])


def test_map_lies_inside_the_lesion(derm_data: Path) -> None:
    """On 6 validation photos the map's mass lies mostly inside the ISIC lesion mask, and no lit pixel lies
    outside the estimated lesion region (background never lit)."""
    from viewer.io import load_volume

    ids, _ = _validation(derm_data)
    eng = DermaeEngine()
    masses = []
    for i in ids[::11][:6]:
        vol = load_volume(derm_data / "images" / f"{i}.jpg")
        res = eng.run(vol)
        m = res.overlays[0].volume.array
        s = m.shape[0]
        mask = read_mask(derm_data / "masks" / f"{i}_segmentation.png")
        mask_s = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(mask.astype(np.float32))[None], s)[0] >= 0.5
        region = lesion_region(resize_rgb(np.asarray(vol.array)[..., :3], s))
        assert m.max() <= 1.0 and m.min() >= 0.0 and not np.any(m[~region] > 0)
        masses.append(float((m * mask_s.numpy()).sum() / max(m.sum(), 1e-9)))
    assert np.mean(masses) >= MASS_INSIDE_FLOOR, masses


def test_map_follows_an_off_centre_lesion() -> None:
    """A dark blob up and to the left of the centre: the map lies on the blob, its centroid on the blob's centre
    (a mirrored, flipped or transposed map would be 8-47 px away), and the engine lights nothing outside it."""
    size, cy, cx, r = 128, 48, 40, 24
    photo = np.full((size, size, 3), (200, 160, 150), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    photo[blob] = (90, 60, 50)
    region = lesion_region(photo)
    assert region[cy, cx] and not region[100, 100] and not region[cy, size - 1 - cx] and not region[size - 1 - cy, cx]
    m = lesion_map(np.ones((1, 16, 16)), photo[None], 1.0)[0]
    near = (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 5) ** 2
    assert m[near].sum() / m.sum() > 0.99
    assert abs((m * yy).sum() / m.sum() - cy) < 3 and abs((m * xx).sum() / m.sum() - cx) < 3
    # the engine end to end: the overlay voxel (row, column) is the photo pixel (row, column)
    res = DermaeEngine().run(Volume(photo, modality="XC", rgb=True))
    sal = res.overlays[0].volume.array
    assert sal.shape == (size, size) and not np.any(sal[~near] > 0)


def test_centred_disc_and_region_fallback() -> None:
    d = centred_disc(128, 0.3)
    assert d[64, 64] and not d[0, 0] and abs(d.mean() - np.pi * 0.09) < 0.01
    flat = np.full((64, 64, 3), 210, np.uint8)
    flat[0, 0] = 0  # no dark blob at the centre
    assert np.array_equal(lesion_region(flat), centred_disc(64))


def test_balanced_sampler_and_class_weights() -> None:
    labels = np.array([0] * 10 + [1] * 20 + [2] * 70)
    idx = balanced_idx(labels, 3000, torch.Generator().manual_seed(0))
    share = np.bincount(labels[idx], minlength=3) / len(idx)
    assert np.allclose(share, 1 / 3, atol=0.03)
    w = class_weights(labels, 3).numpy()
    assert np.allclose(w, [100 / 30, 100 / 60, 100 / 210], rtol=1e-5)


def test_card_states_the_verdict_beside_the_baseline() -> None:
    card = DermaeEngine.card()
    validated, summary = verdict_of(card)
    v = card["validation"]
    assert v["metric"] == "balanced accuracy" and "logistic regression" in v["baseline"]
    assert validated == (v["verdict"] == "better") and summary == v["summary"]
    md = (DEFAULT_WEIGHTS.parent / "card.md").read_text()
    assert v["summary"] in md and "baseline" in md and "ECE" in md
    if not validated:
        assert "demo only" in md
    eval_json = json.loads((DEFAULT_WEIGHTS.parent / "eval.json").read_text())
    assert eval_json["weights_sha256"] == card["sha256"] and eval_json["validation"]["verdict"] == v["verdict"]
