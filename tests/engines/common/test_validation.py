"""Engine-vs-baseline comparison, calibration and baselines on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engines.common.baseline import LogisticBaseline, histogram_features, mean_mask, pixel_features
from engines.common.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    saturation,
)
from engines.common.validation import compare, comparison_table, mean_of, verdict_of


def test_compare_separates_better_equal_and_worse():
    rng = np.random.default_rng(0)
    good = rng.uniform(0.8, 0.9, 40)
    bad = rng.uniform(0.3, 0.4, 40)
    assert compare("Dice", "threshold", mean_of(good), mean_of(bad), 40).verdict == "better"
    assert compare("Dice", "threshold", mean_of(bad), mean_of(good), 40).verdict == "below"
    same = compare("Dice", "threshold", mean_of(good), mean_of(good + rng.normal(0, 0.01, 40)), 40)
    assert same.verdict == "not better" and not same.validated
    c = compare("Dice", "threshold", mean_of(good), mean_of(bad), 40)
    assert c.engine.low <= c.engine.value <= c.engine.high
    d = c.to_dict()
    assert d["validated"] is True and "beats the baseline" in d["summary"]
    assert verdict_of({"validation": d})[0] is True
    assert verdict_of({})[0] is False
    assert "engine-baseline" in comparison_table([c])


def test_compare_needs_two_cases():
    with pytest.raises(ValueError):
        compare("x", "y", mean_of([1.0]), mean_of([0.0]), 1)


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(1)
    true_logit = rng.normal(0, 1.5, 4000)
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-true_logit))).astype(float)
    t = fit_temperature(true_logit * 5.0, y, multiclass=False)
    assert t == pytest.approx(5.0, rel=0.15)
    over = 1 / (1 + np.exp(-true_logit * 5.0))
    fixed = 1 / (1 + np.exp(-true_logit * 5.0 / t))
    assert expected_calibration_error(fixed, y) < expected_calibration_error(over, y)
    assert saturation(over)["above_0.98"] > saturation(fixed)["above_0.98"]
    rep = calibration_report(fixed, y)
    assert set(rep) == {"below_0.02", "above_0.98", "ece"}


def test_multiclass_temperature_and_ece():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1, (3000, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=pi) for pi in p])
    assert fit_temperature(logits * 3, y, multiclass=True) == pytest.approx(3.0, rel=0.15)
    assert expected_calibration_error(p, y) < 0.05


def test_logistic_baseline_learns_a_separable_rule():
    rng = np.random.default_rng(3)
    imgs = rng.uniform(0, 1, (200, 16, 16))
    y = rng.integers(0, 3, 200)
    imgs[y == 1, :8] += 1.0
    imgs[y == 2, 8:] += 1.0
    feats = pixel_features(imgs, 4)
    assert feats.shape == (200, 16)
    clf = LogisticBaseline().fit(feats[:150], y[:150])
    pred = clf.predict_proba(feats[150:]).argmax(1)
    assert (pred == y[150:]).mean() > 0.9
    multi = LogisticBaseline().fit(feats[:150], np.stack([y[:150] == 1, y[:150] == 2], 1).astype(float))
    assert multi.predict_proba(feats[150:]).shape == (50, 2)


def test_histograms_and_mean_mask():
    rgb = np.zeros((2, 4, 4, 3), np.float32)
    rgb[1] = 1.0
    h = histogram_features(rgb, 2, (0.0, 1.0))
    assert h.shape == (2, 6)
    assert h[0, 0] == pytest.approx(1.0) and h[1, 1] == pytest.approx(1.0)
    m = mean_mask(np.stack([np.ones((2, 2)), np.zeros((2, 2))]))
    assert np.allclose(m, 0.5)


def test_read_fitted_only_for_the_weights_it_was_fitted_for(tmp_path):
    import json

    from engines.common.calibration import read_fitted
    from engines.common.evaluate import write_text_atomic
    from engines.weights import sha256_file

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    assert read_fitted(weights) is None
    write_text_atomic(tmp_path / "calibration.json", json.dumps({"weights_sha256": sha256_file(weights), "t": 2}))
    assert (tmp_path / "calibration.json").stat().st_mode & 0o777 == 0o644
    assert read_fitted(weights) == {"weights_sha256": sha256_file(weights), "t": 2}
    weights.write_bytes(b"other weights")
    assert read_fitted(weights) is None
    for damaged in (b'{"weights_sha256": "ab', b"[1, 2]", b"\xff\xfe"):
        (tmp_path / "calibration.json").write_bytes(damaged)
        assert read_fitted(weights) is None
