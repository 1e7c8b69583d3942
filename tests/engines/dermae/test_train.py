"""Short real-data training runs: the loss falls; the whole pipeline runs end to end for a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.dermae import train


def test_autoencoder_loss_falls_on_real_images(prepared_small: Path, tmp_path: Path) -> None:
    args = train.parse_args(["--stage", "ae", "--data", str(prepared_small), "--out", str(tmp_path),
                             "--steps", "30", "--batch-size", "8", "--lr", "3e-3"])
    s = train.stage_ae(args, train.CONFIGS["demo"])
    losses = s["losses"]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "ae" / "model.safetensors").exists()
    assert len((tmp_path / "ae" / "train_log.jsonl").read_text().splitlines()) == 30


def test_whole_pipeline_few_steps(prepared_small: Path, tmp_path: Path) -> None:
    train.main(["--stage", "all", "--data", str(prepared_small), "--out", str(tmp_path), "--steps", "2",
                "--batch-size", "4", "--ddim-steps", "2", "--synthetic-per-class", "2"])
    for st in ("ae", "ldm", "mae", "teacher", "student_real", "student_synth", "student_kd"):
        assert (tmp_path / st / "model.safetensors").exists(), st
    syn = np.load(tmp_path / "synthetic.npz")
    assert syn["images"].shape == (6, 64, 64, 3) and syn["images"].dtype == np.uint8
    assert (tmp_path / "contact_sheet.png").exists()
    q = json.loads((tmp_path / "quality.json").read_text())
    assert "feature_space" in q and q["per_class"]
    s = json.loads((tmp_path / "student_kd" / "train_summary.json").read_text())
    assert s["kd"] == {"temperature": 4.0, "alpha": 0.7} and s["train_images_synthetic"] == 6
    from engines.dermae.evaluate import evaluate

    res = evaluate(tmp_path / "student_kd" / "model.safetensors", prepared_small)
    assert res["validation_images"] == 24 and res["validation"]["metric"] == "balanced accuracy"
    assert 0 <= res["engine_scores"]["balanced_accuracy"] <= 1 and res["validation"]["verdict"] in (
        "better", "not better", "below")
    assert {"before", "after", "after_crossfit"} <= set(res["calibration"]) and len(res["localisation"]) == 2
