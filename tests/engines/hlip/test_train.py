"""Prepare + train CLI on real data (a small subset): the split file, the rule-based texts, a falling loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def test_committed_split_is_by_patient_and_group(shared_data: Path) -> None:
    from engines.hlip.prepare import SPLIT_FILE, make_split

    split = json.loads(SPLIT_FILE.read_text())
    assert not set(split["mri_test_patients"]) & set(split["mri_train_patients"])
    assert not set(split["ct_test_groups"]) & set(split["ct_train_groups"])
    if (shared_data / "head_ct" / "labels.csv").exists():
        again = make_split(shared_data, split["seed"])
        assert again["mri_test_patients"] == split["mri_test_patients"]
        assert again["ct_test_groups"] == split["ct_test_groups"]


def test_prepared_studies_and_texts(prepared_small: Path) -> None:
    meta = json.loads((prepared_small / "meta.json").read_text())
    mri = np.load(prepared_small / "mri.npz")["images"]
    ct = np.load(prepared_small / "ct.npz")["images"]
    assert mri.shape[1:] == (2, 16, 32, 32) and mri.dtype == np.uint8  # FLAIR + T1c per study
    assert ct.shape[1:] == (1, 1, 32, 32)
    assert len(meta["mri"]) == 9  # whole volume + 8 slabs
    assert any(m["tumour"] for m in meta["mri"]) and not all(m["tumour"] for m in meta["mri"])
    for m in meta["mri"]:
        assert all(r.startswith("This MRI study shows: ") for r in m["reports"])
        if m["tumour"]:
            side = m["stats"]["side"]
            other = {"left": "right", "right": "left"}.get(side, side)
            assert f"{side} hemisphere" in m["reports"][0] and f"{other} hemisphere" in m["reports_flipped"][0]
    for m in meta["ct"]:
        assert ("hemorrhage." in m["reports"][0]) == m["hemorrhage"]
    t = np.load(prepared_small / "texts.npz")
    assert t["emb"].shape == (len(t["texts"]), 384)
    assert np.allclose(np.linalg.norm(t["emb"], axis=1), 1.0, atol=1e-4)


def test_short_training_run_loss_falls(prepared_small: Path, tmp_path: Path) -> None:
    from engines.hlip.train import main
    from engines.hlip.weights_io import load_model

    out = tmp_path / "run"
    main(["--data", str(prepared_small), "--config", "tiny", "--steps", "40", "--out", str(out), "--lr", "3e-3",
          "--warmup", "3", "--mri-batch", "2", "--ct-batch", "6", "--device", "cpu"])
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 40 and all(np.isfinite(r["loss"]) for r in log)
    first = np.mean([r["loss"] for r in log[:10]])
    last = np.mean([r["loss"] for r in log[-10:]])
    assert last < first, (first, last)
    model = load_model(out / "model.safetensors")  # strict, config from the metadata
    assert model.config.name == "tiny"
