"""Model layout: the official key list loads strictly into the paper config; parity with HF modules; training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.radzero.model import CONFIGS, Dinov2Embeddings, MPNetModel, RadZero, RadZeroConfig, build
from engines.weights import load_into

REPO = Path(__file__).resolve().parents[3]
KEYS = Path(os.environ.get("LUCENT_SHARED", REPO.parent / "shared")) / "reference" / "radzero_state_dict_keys.json"


def test_official_key_list_loads_strictly_into_paper_config() -> None:
    assert KEYS.exists(), f"{KEYS} is missing: the key-list tests need ../shared/reference"
    shapes = json.loads(KEYS.read_text())
    assert len(shapes) == 461
    model = build(CONFIGS["paper"], empty=True)
    own = model.state_dict()
    assert set(own) == set(shapes)
    assert all(list(own[k].shape) == v for k, v in shapes.items())
    g = torch.Generator().manual_seed(0)
    n_max = max(int(np.prod(v)) for v in shapes.values())
    base = torch.rand(n_max, generator=g).half()  # random values, shared storage (fast); fp16 as a file would be
    sd = {k: base[: int(np.prod(v))].view(v) for k, v in shapes.items()}
    missing, unexpected = load_into(model, sd, "radzero_state_dict_keys.json", strict=True)
    assert not missing and not unexpected
    k = "loss_fns.RadZeroLoss.loss_temperature"
    assert float(model.state_dict()[k]) == pytest.approx(float(sd[k]), abs=1e-3)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(209.4e6, rel=0.01)
    assert not any(p.requires_grad for p in model.vision_model.parameters())  # frozen as in the paper
    assert all(p.requires_grad for p in model.align_transformer.parameters())


def test_paper_position_table_interpolates_to_37x37() -> None:
    cfg = CONFIGS["paper"]
    emb = Dinov2Embeddings(RadZeroConfig(**{**cfg.to_dict(), "hidden": 8}))
    pos = emb.interpolate_pos_encoding(37 * 37, 518, 518)
    assert pos.shape == (1, 1 + 37 * 37, 8)
    torch.testing.assert_close(pos[:, 0], emb.position_embeddings[:, 0])
    assert emb.interpolate_pos_encoding(256, 224, 224) is emb.position_embeddings


def test_init_temperature_is_0_07() -> None:
    m = RadZero(RadZeroConfig(image_size=28, hidden=16, vision_layers=1, heads=2, align_layers=1, pos_grid=2))
    assert float(m.head_params.tau.detach()) == pytest.approx(0.07)


def test_parity_with_transformers_modules() -> None:
    """Our DINOv2 and MPNet match Hugging Face's on tiny configs (same weights, eval mode)."""
    import re

    import transformers as T

    torch.manual_seed(0)
    hf = T.Dinov2Model(T.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=128, image_size=28, patch_size=14)).eval()
    ren = {"q_proj": "attention.query", "k_proj": "attention.key", "v_proj": "attention.value",
           "o_proj": "output.dense"}  # transformers ≥ 5 renamed them; checkpoints use the 4.x names
    sd = {re.sub(r"attention\.(q_proj|k_proj|v_proj|o_proj)", lambda m: "attention." + ren[m.group(1)], k): v
          for k, v in hf.state_dict().items()}
    from engines.radzero.model import Dinov2Model

    mine = Dinov2Model(RadZeroConfig(hidden=32, vision_layers=2, heads=4, patch_size=14, pos_grid=2, image_size=28,
                                     freeze_vision=True)).eval()
    mine.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), hf(pixel_values=x).last_hidden_state, atol=1e-5, rtol=1e-5)
    hfm = T.MPNetModel(T.MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40)).eval()
    mm = MPNetModel(32, {"vocab": 100, "positions": 40, "layers": 2, "heads": 4, "ffn": 64, "buckets": 32,
                         "pad_id": 1}).eval()
    mm.load_state_dict(hfm.state_dict(), strict=True)
    ids = torch.tensor([[0, 5, 17, 9, 2, 1, 1], [0, 33, 2, 1, 1, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        a = hfm(input_ids=ids, attention_mask=mask).last_hidden_state
        b = mm(ids, mask)
    torch.testing.assert_close(b[mask.bool()], a[mask.bool()], atol=1e-4, rtol=1e-4)


def test_short_real_training_loss_falls(prepared_small: Path, tmp_path: Path, monkeypatch) -> None:
    from engines.radzero import train as tr
    from engines.radzero.weights_io import load_model, threshold_of

    tiny = RadZeroConfig(name="tiny", image_size=112, patch_size=14, pos_grid=8, hidden=64, vision_layers=2,
                         heads=2, align_layers=1, local_stride=8)
    monkeypatch.setitem(tr.CONFIGS, "tiny", tiny)
    args = tr.parse_args(["--data", str(prepared_small), "--config", "tiny", "--steps", "40", "--out",
                          str(tmp_path), "--batch-size", "8", "--lr", "1e-3", "--warmup", "5", "--no-augment",
                          "--no-threshold", "--threads", "1", "--device", "cpu"])
    s = tr.train(args)
    losses = np.array(s["losses"])
    assert np.isfinite(losses).all()
    assert losses[-8:].mean() < 0.8 * losses[:8].mean(), (losses[:8], losses[-8:])
    log = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 40 and "tau" in json.loads(log[-1]) and "lung" in json.loads(log[-1])
    w = tmp_path / "model.safetensors"
    m = load_model(w)
    assert m.config.name == "tiny" and threshold_of(w) is None
    from engines.radzero.evaluate import choose_threshold_on_train

    r = choose_threshold_on_train(w, prepared_small)
    assert threshold_of(w)[0] == pytest.approx(r["threshold"]) and "TRAINING" in threshold_of(w)[1]


def test_local_stem_gives_a_finer_grid_and_starts_as_the_patch_model() -> None:
    """Demo config: 28 × 28 tokens at 224 px; the stem's last conv starts at zero, so a warm start from the
    16 × 16 patch model gives that model's tokens, bilinearly upsampled. The paper config has no stem."""
    import torch.nn.functional as F

    from engines.radzero.model import CONFIGS

    assert CONFIGS["demo"].grid == 28 and CONFIGS["demo"].patch_grid == 16 and CONFIGS["paper"].grid == 37
    assert not any(k.startswith("local_stem") for k in RadZero(CONFIGS["paper"]).state_dict())
    cfg = RadZeroConfig(image_size=32, patch_size=8, pos_grid=4, hidden=16, vision_layers=1, heads=2,
                        align_layers=1, local_stride=4)
    torch.manual_seed(0)
    m = RadZero(cfg).eval()
    patch = RadZero(RadZeroConfig(**{**cfg.to_dict(), "local_stride": 0})).eval()
    patch.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("local_stem")})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        v, vp = m.encode_image(x), patch.vision_model(x)
        vp = patch.align_transformer(vp)
    assert v.shape == (2, 1 + 8 * 8, 16)
    up = F.interpolate(vp[:, 1:].transpose(1, 2).reshape(2, 16, 4, 4), size=(8, 8), mode="bilinear",
                       align_corners=False).flatten(2).transpose(1, 2)
    want = m.head_params.layer_norm(torch.cat([vp[:, :1], up], 1))
    torch.testing.assert_close(v, want)


def test_lung_attention_loss_hand_computed() -> None:
    from engines.radzero.train import lung_attention_loss, region_tokens

    scores = torch.log(torch.tensor([[[1.0, 3.0]]]))  # softmax → [0.25, 0.75]
    region = torch.tensor([[1.0, 0.0]])
    loss = lung_attention_loss(scores, torch.tensor([[True]]), region, torch.tensor([True]))
    assert loss.item() == pytest.approx(-np.log(0.25 + 1e-4), rel=1e-5)
    assert lung_attention_loss(scores, torch.tensor([[True]]), region, torch.tensor([False])).item() == 0.0
    r = torch.zeros(1, 4, 4)
    r[0, :2, :2] = 1  # top-left quarter
    np.testing.assert_allclose(region_tokens(r, None, 2).numpy(), [[1.0, 0.0, 0.0, 0.0]])


def test_wrong_keys_are_named(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from engines.base import EngineError
    from engines.radzero.weights_io import load_model, save_weights

    m = RadZero(RadZeroConfig(image_size=28, hidden=16, vision_layers=1, heads=2, align_layers=1, pos_grid=2))
    p = tmp_path / "w.safetensors"
    save_weights(m, p)
    sd = load_file(str(p))
    del sd["align_transformer.transformer_layers.layer.0.norm1.weight"]
    save_file(sd, str(p), metadata={"config": json.dumps(m.config.to_dict())})
    with pytest.raises(EngineError, match="norm1.weight"):
        load_model(p)
    torch.save({}, tmp_path / "x.safetensors")
    with pytest.raises(EngineError, match="pickle"):
        load_model(tmp_path / "x.safetensors")


def test_lung_term_region_is_the_filled_lung_field(prepared_small: Path) -> None:
    """prepare stores the lungVAE mask (aerated lung: the localisation target) and, for the lung-attention term,
    its filled lung fields (fill_fields at the prepared size: a superset, each lung hulled); training reads the
    filled field where an image has a mask and the lung boxes elsewhere."""
    from engines.common.lung_fields import fill_fields
    from engines.radzero.train import SentenceBatches

    npz = prepared_small / "112" / "train.npz"
    d = np.load(npz)
    assert str(d["lung_region"]) == "filled"
    has = d["has_mask"].astype(bool)
    assert has.any()
    for m, f in zip(d["lung_mask"][has], d["lung_field"][has], strict=True):
        assert not (m.astype(bool) & ~f.astype(bool)).any()  # covers the aerated mask
        np.testing.assert_array_equal(f.astype(bool), fill_fields(m.astype(bool)))
    ds = SentenceBatches(npz)
    want = np.where(has[:, None, None], d["lung_field"], d["box_mask"])
    np.testing.assert_array_equal(ds.regions.numpy(), want.astype(np.float32))
    assert ds.region_kind.startswith("filled lung fields")
