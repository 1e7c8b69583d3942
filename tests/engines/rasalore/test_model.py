"""Stage-2 network (sizes, LoRE frozen), losses and metrics on hand-computed cases, DDPT shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engines.common.metrics import average_precision, dice, roc_auc
from engines.rasalore import losses
from engines.rasalore.model import CONFIGS, RASALoRE, RASALoREConfig, count_parameters, sample_grid


def test_parameter_count_below_8m() -> None:
    n = count_parameters(RASALoRE(CONFIGS["paper"]))
    assert n < 8_000_000
    assert 7_000_000 < n < 7_500_000  # the paper: ~7.25 M
    assert count_parameters(RASALoRE(CONFIGS["demo"])) < 8_000_000


def test_forward_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    m = RASALoRE(CONFIGS["demo"]).eval()
    with torch.no_grad():
        logits, act, emb = m(torch.rand(2, 1, 128, 128))
    assert logits.shape == (2, 1, 128, 128) and act.shape == (2, 32, 32) and emb.shape == (2, 1024, CONFIGS["demo"].emb)
    assert torch.isfinite(logits).all() and (act > 0).all() and (act < 1).all()


def test_lore_is_frozen() -> None:
    torch.manual_seed(0)
    assert RASALoRE(CONFIGS["demo"]).lore.positional_embedding.shape == (2, CONFIGS["demo"].emb // 2)
    tiny = RASALoREConfig(name="tiny", input_size=32, widths=(4, 4, 8, 16), emb=16, token_grid=8, dec=(4, 4),
                          grid=8, ff=(8, 4), lore_scale=8.0)
    m = RASALoRE(tiny)
    assert not any(True for _ in m.lore.parameters())  # a buffer, no parameters
    buf = m.lore.positional_embedding
    assert buf.requires_grad is False and buf.shape == (2, 8)
    before, emb_before = buf.clone(), m.lore().clone()
    assert emb_before.shape == (64, 16)
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    logits, act, _ = m(torch.rand(2, 1, 32, 32))
    (logits.mean() + act.mean()).backward()
    opt.step()
    assert torch.equal(m.lore.positional_embedding, before)
    assert torch.equal(m.lore(), emb_before)
    assert "lore.positional_embedding" in m.state_dict()  # shipped with the weights (it is random)


def test_grid_points_follow_the_authors() -> None:
    m = RASALoRE(CONFIGS["demo"])
    xy = m.lore.coords  # (x, y), row-major
    assert xy[0].tolist() == [0, 0] and xy[1].tolist() == [4, 0] and xy[32].tolist() == [0, 4]
    mask = torch.zeros(1, 128, 128)
    mask[0, 8, 12] = 1
    g = sample_grid(mask, 32)
    assert g.shape == (1, 32, 32) and g[0, 2, 3] == 1 and g.sum() == 1


def test_dice_and_tversky_by_hand() -> None:
    p = torch.tensor([1.0, 1.0, 0.0, 0.0])
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert float(losses.dice_coefficient(p, t)) == pytest.approx(0.5)  # 2·1 / (2 + 2)
    # TP 1.5, FN 0.5, FP 0 → 1.5 / (1.5 + 0.3·0.5)
    assert float(losses.tversky_index(torch.tensor([1, .5, 0, 0]), torch.tensor([1., 1, 0, 0]), 0.3)) == \
        pytest.approx(1.5 / 1.65, rel=1e-5)
    # TP 1, FN 0, FP 2 → 1 / (1 + 0.7·2)
    assert float(losses.tversky_index(torch.tensor([1., 1, 1, 0]), torch.tensor([1., 0, 0, 0]), 0.3)) == \
        pytest.approx(1 / 2.4, rel=1e-5)
    assert float(losses.exp_log(torch.tensor(1.0))) == pytest.approx(0.0)
    assert float(losses.exp_log(torch.tensor(math.exp(-1)))) == pytest.approx(1.0)
    assert float(losses.exp_log(torch.tensor(0.0))) == pytest.approx(2.0)  # clamped


def test_segmentation_and_healthy_losses() -> None:
    t = torch.zeros(1, 4, 4)
    t[0, :2, :2] = 1
    perfect = losses.segmentation_loss(t.clone(), t)
    assert float(perfect) == pytest.approx((-math.log(4 / (4 + 1e-6))) ** 0.3, rel=0.05)  # ε in the index (fp32)
    # all-ones prediction: Tversky = 4 / (4 + 0.7·12); FP mass 12/16
    allon = losses.segmentation_loss(torch.ones(1, 4, 4), t)
    tv = 4 / (4 + 0.7 * 12)
    assert float(allon) == pytest.approx((-math.log(tv)) ** 0.3 + 0.6 * 12 / 16, rel=1e-4)
    assert float(losses.healthy_fp_penalty(torch.full((1, 4, 4), 0.25), torch.full((1, 2, 2), 0.5))) == 0.75
    emb = torch.stack([torch.ones(4, 3), -torch.ones(4, 3)], 0)
    pts = torch.tensor([[[1, 1], [1, 1]], [[0, 0], [0, 0]]], dtype=torch.float32)
    assert float(losses.point_embedding_loss(emb, pts)) == 0.0


def test_metrics_by_hand() -> None:
    a = np.array([[1, 1, 0], [0, 0, 0]])
    b = np.array([[1, 0, 0], [1, 0, 0]])
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6)
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_ddpt_shapes_and_pseudo_masks() -> None:
    from engines.rasalore.ddpt import CONFIGS as DC
    from engines.rasalore.ddpt import DDPT, DDPTConfig, mil_logit, pseudo_masks

    cfg = DDPTConfig.from_dict({**DC["demo"].to_dict(), "text": "random", "layers": 2})
    m = DDPT(cfg)
    logits, patch = m(torch.rand(3, 1, 128, 128))
    assert logits.shape == (3, 2) and patch.shape == (3, 256, 2)
    assert m.ctx.shape == (16, cfg.text_width) and m.vpt.shape == (2, 10, cfg.width)
    assert mil_logit(torch.tensor([[[0.0, 3.0], [0.0, 1.0], [0.0, -1.0]]]), 2).item() == pytest.approx(2.0)
    pmap = torch.zeros(1, 2, 2)
    pmap[0, 0, 0] = 1.0
    pm = pseudo_masks(pmap, torch.ones(1, 8, 8))
    assert pm[0, 0, 0] == 1 and pm[0, 7, 7] == 0 and 0 < pm.sum() < 64


def test_attention_is_the_authors_per_head_softmax() -> None:
    """The fused RASAM attention equals the authors' loop: per head softmax(q kᵀ / √emb) v, heads concatenated."""
    torch.manual_seed(0)
    m = RASALoRE(CONFIGS["demo"]).eval()
    ra = m.encoder.adapter2
    img = torch.randn(2, ra.emb_dim, 8, 8)
    ra.positional_noise_encoding.data = torch.randn(64, ra.emb_dim)
    pts = torch.randn(2, 16, ra.emb_dim)
    tok = img.flatten(2).transpose(1, 2)
    tok_pos = tok + ra.positional_noise_encoding[None]
    heads = []
    for i in range(ra.num_heads):
        q, k = ra.query_projections[i](pts), ra.key_projections[i](tok)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(ra.emb_dim), dim=-1)
        heads.append(a @ ra.value_projections[i](tok_pos))
    ref = ra.output_proj(torch.cat(heads, -1)) + pts
    with torch.no_grad():
        act, out = ra(img, pts)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(act, ra.FF(ref).view(2, -1, 1), atol=1e-5, rtol=1e-4)


def test_inference_rewrite_keeps_the_function() -> None:
    """for_inference (transposed convs → convs, batch norm folded, decoder upsample folded through the
    token–point product, channels-last) changes no output."""
    import copy

    from engines.rasalore.model import for_inference

    torch.manual_seed(0)
    m = RASALoRE(CONFIGS["demo"])
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    m.decoder.norm2.weight.data.normal_()  # the folded upsample carries the norm's affine: make it matter
    m.decoder.norm2.bias.data.normal_()
    m.eval()
    fast = for_inference(copy.deepcopy(m))
    kinds = {type(mod) for mod in fast.encoder.adapter1.modules()}
    assert torch.nn.ConvTranspose2d not in kinds and torch.nn.BatchNorm2d not in kinds
    assert fast.decoder.fold_upsample
    x = torch.rand(3, 1, 128, 128)
    with torch.no_grad():
        for a, b in zip(m(x), fast(x.contiguous(memory_format=torch.channels_last)), strict=True):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
