"""VL-CABS and MP-NCE against hand-computed tiny cases; metrics; the rule-based sentence splitter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engines.radzero.head import mp_nce, positive_mask, vl_cabs
from engines.radzero.metrics import choose_threshold, dice, f1_accuracy, pointing_hit, zero_shot_prob


def test_vl_cabs_hand_computed() -> None:
    # one image with 2 tokens, one text; tokens e_x and 2·e_y, text along e_x
    v = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    t = torch.tensor([[3.0, 0.0]])
    tau = 0.5
    logit, score = vl_cabs(v, t, tau)
    assert logit.shape == (1, 1) and score.shape == (1, 1, 2)
    # cos = (1, 0) → score = (2, 0); a = softmax = (e²/(e²+1), 1/(e²+1))
    torch.testing.assert_close(score, torch.tensor([[[2.0, 0.0]]]))
    a0, a1 = math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)
    pooled = np.array([a0 * 1.0, a1 * 2.0])  # Σ a_i V_i (un-normalised tokens)
    expected = pooled[0] / np.linalg.norm(pooled)  # cos with e_x
    assert float(logit) == pytest.approx(expected, abs=1e-6)


def test_vl_cabs_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    v, t = torch.randn(3, 10, 8), torch.randn(5, 8)
    logit, score = vl_cabs(v, t, torch.tensor([0.07]))
    assert logit.shape == (3, 5) and score.shape == (3, 5, 10)
    assert logit.abs().max() <= 1 + 1e-6 and score.abs().max() <= 1 / 0.07 + 1e-4
    sim = torch.sigmoid(score)
    assert sim.min() > 0 and sim.max() < 1


def test_model_head_drops_cls_and_scales() -> None:
    from engines.radzero.model import RadZero, RadZeroConfig

    cfg = RadZeroConfig(image_size=28, hidden=16, vision_layers=1, heads=2, align_layers=1, pos_grid=2, text_dim=8)
    m = RadZero(cfg).eval()
    with torch.no_grad():
        lg, sc = m(torch.randn(2, 3, 28, 28), torch.randn(3, 8))
    assert lg.shape == (2, 3) and sc.shape == (2, 3, 4)  # 2×2 patches, CLS dropped
    assert lg.abs().max() <= 1 / 0.07 + 1e-3


def test_mp_nce_hand_computed() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]])
    pos = torch.tensor([[True, True, False], [False, False, True]])
    # i2t row 0: positives 2.0 and 1.0 each vs the negative 0.0; row 1: 3.0 vs negatives 0.0, 0.5
    r0 = 0.5 * (-math.log(math.e ** 2 / (math.e ** 2 + 1)) - math.log(math.e / (math.e + 1)))
    r1 = -math.log(math.e ** 3 / (math.e ** 3 + 1 + math.e ** 0.5))
    i2t = (r0 + r1) / 2
    # t2i col 0: 2.0 vs 0.0; col 1: 1.0 vs 0.5; col 2: 3.0 vs 0.0
    c0 = -math.log(math.e ** 2 / (math.e ** 2 + 1))
    c1 = -math.log(math.e / (math.e + math.e ** 0.5))
    c2 = -math.log(math.e ** 3 / (math.e ** 3 + 1))
    t2i = (c0 + c1 + c2) / 3
    assert float(mp_nce(logits, pos)) == pytest.approx(0.5 * (i2t + t2i), abs=1e-6)


def test_mp_nce_one_positive_is_clip_loss_and_needs_positives() -> None:
    torch.manual_seed(1)
    lg = torch.randn(4, 4)
    clip = 0.5 * (torch.nn.functional.cross_entropy(lg, torch.arange(4))
                  + torch.nn.functional.cross_entropy(lg.t(), torch.arange(4)))
    torch.testing.assert_close(mp_nce(lg, torch.eye(4, dtype=torch.bool)), clip)
    with pytest.raises(ValueError):
        mp_nce(lg, torch.zeros(4, 4, dtype=torch.bool))
    p = positive_mask([{"a", "b"}, {"b"}], ["a", "b", "c"])
    assert p.tolist() == [[True, True, False], [False, True, False]]


def test_grounding_metrics_hand_computed() -> None:
    sim = np.array([[0.1, 0.9], [0.6, 0.2]])
    region = np.array([[0, 1], [0, 0]])
    assert pointing_hit(sim, region) and not pointing_hit(sim, 1 - region)
    # θ 0.5 → {(0,1), (1,0)}; region {(0,1)} → 2·1/(2+1)
    assert dice(sim, region, 0.5) == pytest.approx(2 / 3)
    assert dice(np.zeros((2, 2)), np.zeros((2, 2)), 0.5) == 1.0
    theta, means = choose_threshold([sim], [region], grid=(0.05, 0.5, 0.7))
    assert theta == 0.7 and means[0.7] == 1.0 and means[0.05] == pytest.approx(2 / 5)
    assert zero_shot_prob(np.array([2.0]), np.array([2.0]))[0] == pytest.approx(0.5)
    assert zero_shot_prob(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1)))
    f1, acc = f1_accuracy(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1]))
    assert f1 == pytest.approx(0.5) and acc == pytest.approx(0.5)


def test_rule_based_sentences() -> None:
    from engines.radzero.text import minimal_sentences, query_prompt

    s = minimal_sentences("Legionella", "Febrile neutropenia. Extensive left lower lobe consolidation with "
                                        "obscuration of the left hemidiaphragm silhouette. CT showed GGOs.")
    assert s[0] == "There is legionella pneumonia."
    assert "There is consolidation." in s and "Extensive left lower lobe consolidation." in s
    assert not any("neutropenia" in x.lower() or "ct " in x.lower() for x in s)
    assert minimal_sentences("No Finding", "")[0] == "There is no abnormality."
    assert all("\ufffd" not in x for x in minimal_sentences("COVID-19", "Patchy opacity 38\ufffdC in both lungs."))
    assert "Ground-glass opacity in the right lower lobe." in minimal_sentences("COVID-19", "GGO in the RLL.")
    assert query_prompt("consolidation") == ("There is consolidation.", "There is no consolidation.")
    assert query_prompt("There are nodules") == ("There are nodules.", "There are no nodules.")
    assert query_prompt("Diffuse opacities.") == ("Diffuse opacities.", None)
