"""Slice calibration (Platt scaling), the shipped postprocess.json, and the pseudo-mask refinement on synthetic cases."""

from __future__ import annotations

import json

import numpy as np

from engines.rasalore.calibrate import FILE_NAME, SliceCalibration, fit_platt, slice_labels
from engines.rasalore.engine import DEFAULT_WEIGHTS
from engines.rasalore.postprocess import PostParams, otsu
from engines.rasalore.refine import refine_one


def test_platt_recovers_a_known_scaling() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(5.0, 4.0, 1500)  # raw logits sitting far on the "tumour" side, as the network's do
    y = (rng.random(1500) < SliceCalibration(0.25, -1.0).prob(z)).astype(float)
    cal = fit_platt(z, y)
    assert abs(cal.a - 0.25) < 0.08 and abs(cal.b + 1.0) < 0.5
    assert np.isnan(cal.prob(np.nan))


def test_slice_labels_follow_the_200_px_rule() -> None:
    wt = np.zeros((3, 30, 30), bool)
    wt[1, :10, :10] = True  # 100 px: ambiguous
    wt[2, :20, :20] = True  # 400 px: tumour
    lab = slice_labels(wt)
    assert lab[0] == 0 and np.isnan(lab[1]) and lab[2] == 1


def test_shipped_postprocess_matches_the_weights() -> None:
    from engines.weights import sha256_file

    data = json.loads(DEFAULT_WEIGHTS.with_name(FILE_NAME).read_text())
    assert data["weights_sha256"] == sha256_file(DEFAULT_WEIGHTS)  # recalibrate when the weights change
    for key in ("post", "post_flair"):
        p = PostParams.from_dict(data[key])
        assert 0 < p.threshold < 1 and p.erode_px >= 0
    assert data["slice_calibration"]["a"] > 0
    assert "brats_2013_pat0006_1" not in " ".join(data["chosen_on"])  # never the test patient


def test_refine_grows_to_the_bright_region_inside_the_box() -> None:
    flair = np.full((64, 64), 0.2, np.float32)
    flair[22:36, 22:38] = 0.9  # the lesion (inside the stage-1 box: the mask's box grown by 8 px)
    flair[2:6, 55:60] = 0.95  # a bright spot far outside the stage-1 box
    brain = np.ones((64, 64), bool)
    pm = np.zeros((64, 64), bool)
    pm[24:30, 24:34] = True  # a stage-1 mask covering part of the lesion
    out = refine_one(pm, flair, brain)
    assert out[22:36, 22:38].all() and out.sum() == 14 * 16  # the whole lesion, nothing else
    assert not refine_one(np.zeros_like(pm), flair, brain).any()  # no stage-1 mask → nothing
    assert 0.2 < otsu(flair[brain]) < 0.9


def test_card_shows_engine_baseline_verdict_and_calibration() -> None:
    from engines.common.validation import verdict_of
    from engines.rasalore.engine import RASALoREEngine

    card = RASALoREEngine.card()
    validated, summary = verdict_of(card)
    assert card["validation"]["verdict"] in {"better", "not better", "below"}
    assert validated == (card["validation"]["verdict"] == "better") and "baseline" in summary
    table = card["metrics"]["table"]
    assert "stage2_raw" in table and "baseline" in table and "[" in table  # side by side, with intervals
    cal = card["calibration"]["test"]
    assert cal["after"]["above_0.98"] <= cal["before"]["above_0.98"]
    assert card["caveats"]  # the plain-words limits of the evaluation
