"""Model shapes, LSE-LBA limits and stability, the split and a short real-data training run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.multires_cxr.lse_lba import LSELBAPool, lse_lba
from engines.multires_cxr.model import CONFIGS, MultiResConfig, MultiResCXR


def test_probability_pooling_lies_between_mean_and_max_of_the_map() -> None:
    torch.manual_seed(0)
    model = MultiResCXR(CONFIGS["demo_findings"]).eval()
    region = torch.zeros(2, 1, 32, 32)
    region[:, :, 8:24, 4:14] = 1
    with torch.no_grad():
        logits, s = model(torch.randn(2, 1, 128, 128), region)
    assert logits.shape == (2, 5) and s.shape == (2, 5, 32, 32)
    p = torch.sigmoid(logits)
    inside = torch.sigmoid(s)[:, :, 8:24, 4:14].flatten(2)
    assert torch.all(p <= inside.max(-1).values + 1e-4) and torch.all(p >= inside.mean(-1) - 1e-4)


def test_demo_shapes_and_ranges() -> None:
    model = MultiResCXR(CONFIGS["demo"]).eval()
    with torch.no_grad():
        logits, s = model(torch.randn(2, 1, 128, 128))
    assert logits.shape == (2, 14) and s.shape == (2, 14, 32, 32)
    p = torch.sigmoid(logits)
    assert torch.all((p >= 0) & (p <= 1)) and torch.isfinite(s).all()
    # the pooled logit lies between the map's mean and max
    assert torch.all(logits <= s.flatten(2).max(-1).values + 1e-5)
    assert torch.all(logits >= s.flatten(2).mean(-1) - 1e-5)
    assert len(model.saliency_levels(torch.randn(1, 1, 128, 128))) == 4


def test_paper_config_builds() -> None:
    cfg = CONFIGS["paper"]
    assert cfg.input_size == 512 and cfg.blocks == (3, 4, 6, 3) and cfg.bottleneck
    model = MultiResCXR(cfg)
    assert model.layer4[0].conv3.out_channels == 2048
    assert MultiResConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_lse_lba_limits_and_stability() -> None:
    torch.manual_seed(0)
    s = torch.randn(3, 14, 8, 8)
    mx, mean = s.flatten(2).max(-1).values, s.flatten(2).mean(-1)
    torch.testing.assert_close(lse_lba(s, torch.full((14,), 1e4)), mx, atol=1e-2, rtol=0)
    pool = LSELBAPool(14, r0=0.0)
    with torch.no_grad():
        pool.beta.fill_(-8.0)  # r = e^-8 ≈ 3e-4: average-pooling limit
    torch.testing.assert_close(pool(s), mean, atol=2e-3, rtol=0)
    assert torch.allclose(LSELBAPool(14, 5.0).r, torch.full((14,), 6.0))
    big = torch.full((1, 14, 4, 4), 1e4)
    out = lse_lba(big, torch.full((14,), 10.0))
    assert torch.isfinite(out).all() and torch.allclose(out, torch.full_like(out, 1e4))
    # a single hot instance: p = max − log(N)/r in the large-gap limit
    one = torch.zeros(1, 14, 4, 4)
    one[..., 0, 0] = 100.0
    torch.testing.assert_close(lse_lba(one, torch.full((14,), 5.0)),
                               torch.full((1, 14), 100 - math.log(16) / 5), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        LSELBAPool(14, r0=-1)


def test_split_file_is_by_patient_and_disjoint(shared_data: Path) -> None:
    import csv

    from engines.multires_cxr.prepare import SPLIT_FILE

    split = json.loads(SPLIT_FILE.read_text())
    assert not set(split["train"]) & set(split["test"])
    with open(shared_data / "cxr" / "metadata.csv", newline="") as fh:
        pid = {r["filename"]: r["patientid"] for r in csv.DictReader(fh)}
    assert not {pid[f] for f in split["train"]} & {pid[f] for f in split["test"]}


def test_duplicate_detection_joins_near_identical() -> None:
    from engines.multires_cxr.data import duplicate_groups, merge_groups, thumbnail

    rng = np.random.default_rng(0)
    a = rng.random((100, 90)).astype(np.float32)
    b = np.clip(a * 0.95 + 0.02 + rng.normal(0, 0.01, a.shape), 0, 1).astype(np.float32)
    c = rng.random((100, 90)).astype(np.float32)
    g = duplicate_groups(np.stack([thumbnail(a), thumbnail(b), thumbnail(c)]))
    assert g[0] == g[1] != g[2]
    units = merge_groups(["p1", "p2", "p3"], g)
    assert units[0] == units[1] != units[2]


def test_short_real_training_loss_falls(prepared_small: Path, tmp_path: Path) -> None:
    from engines.multires_cxr.train import parse_args, train
    from engines.multires_cxr.weights_io import load_model

    args = parse_args(["--data", str(prepared_small), "--steps", "15", "--out", str(tmp_path),
                       "--input-size", "128", "--batch-size", "8", "--limit", "16", "--no-augment",
                       "--lr", "3e-3", "--threads", "1"])
    s = train(args)
    losses = s["losses"]
    assert len(losses) == 15 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 16))
    m = load_model(tmp_path / "model.safetensors")
    assert m.config.input_size == 128
