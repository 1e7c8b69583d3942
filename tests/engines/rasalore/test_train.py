"""Short real-data training runs: DDPT writes pseudo-masks; the stage-2 loss falls on real slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def test_ddpt_cli_writes_pseudo_masks(prepared_small: Path, tmp_path: Path) -> None:
    from engines.rasalore.train_ddpt import main

    main(["--data", str(prepared_small), "--out", str(tmp_path), "--steps", "2", "--batch-size", "4",
          "--text", "random", "--limit", "16"])
    for f in ("ddpt.safetensors", "pseudo_train.npz", "pseudo_val.npz", "pseudo_test.npz", "ddpt_log.jsonl",
              "ddpt_summary.json"):
        assert (tmp_path / f).exists(), f
    with np.load(tmp_path / "pseudo_train.npz") as p, np.load(prepared_small / "train.npz") as d:
        assert p["pseudo"].shape == d["images"].shape
        assert p["pseudo"][d["labels"] != 1].sum() == 0  # healthy / ambiguous slices: empty pseudo-mask
    with np.load(tmp_path / "pseudo_val.npz") as p, np.load(prepared_small / "val.npz") as d:
        assert p["pseudo"][d["labels"] != 1].sum() == 0  # validation: its slice labels decide too
    from engines.rasalore.weights_io import load_stage1

    m = load_stage1(tmp_path / "ddpt.safetensors")
    p, pmap = m.patch_map(torch.rand(2, 1, 128, 128))
    assert p.shape == (2,) and pmap.shape == (2, 16, 16)


def test_stage2_loss_falls_on_real_slices(prepared_small: Path) -> None:
    """Six optimiser steps on one fixed batch of real slices (1 tumour, 1 healthy) with stand-in
    pseudo-masks (bright FLAIR voxels of the tumour slices — no ground truth)."""
    from engines.rasalore.model import CONFIGS, RASALoRE, RASALoREConfig
    from engines.rasalore.train import stage2_loss

    torch.manual_seed(0)
    with np.load(prepared_small / "train.npz") as d:
        lab, img = d["labels"], d["images"].astype(np.float32)
    idx = np.concatenate([np.nonzero(lab == 1)[0][:1], np.nonzero(lab == 0)[0][:1]])
    x = torch.from_numpy(img[idx])[:, None]
    pseudo = (x[:, 0] > 0.5).float() * torch.tensor([1.0, 0])[:, None, None]
    tumour = torch.tensor([True, False])
    cfg = RASALoREConfig.from_dict({**CONFIGS["demo"].to_dict(), "dropout": 0.0})
    model = RASALoRE(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss, _ = stage2_loss(model, x, pseudo, tumour)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses


def test_stage2_cli_selects_on_validation_without_ground_truth(prepared_small: Path, tmp_path: Path) -> None:
    """Three steps, validated after steps 2 and 3: the saved checkpoint is the best validation step, chosen from
    the validation patient's slice labels and pseudo-masks; the ground-truth files are never opened."""
    import json
    import shutil

    from engines.rasalore.train import main

    data = tmp_path / "data"
    data.mkdir()
    for side in ("train", "val"):  # no gt_*.npz, no test.npz: training must not need them
        shutil.copy(prepared_small / f"{side}.npz", data)
    for side in ("train", "val"):
        with np.load(data / f"{side}.npz") as d:
            lab, img = d["labels"], d["images"]
        np.savez_compressed(tmp_path / f"pseudo_{side}.npz",
                            pseudo=((img > 0.5) & (lab == 1)[:, None, None]).astype(np.uint8))
    main(["--data", str(data), "--pseudo", str(tmp_path), "--out", str(tmp_path), "--steps", "3",
          "--batch-size", "2", "--val-every", "2"])
    from engines.rasalore.weights_io import load_stage2

    m = load_stage2(tmp_path / "model.safetensors")
    assert m.config.name == "demo"
    assert (tmp_path / "train_log.jsonl").read_text().count("\n") == 3
    vals = [json.loads(line) for line in (tmp_path / "val_log.jsonl").read_text().splitlines()]
    assert [v["step"] for v in vals] == [2, 3]
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    best = max(vals, key=lambda v: v["val_score"])
    assert summary["selected_step"] == best["step"]
    assert summary["validation"]["val_score"] == best["val_score"]
