"""Network shapes and ranges, the DDPM schedule and loss, MAE masking, KD loss by hand, Grad-CAM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines.dermae.model import (
    CONFIGS,
    AutoEncoder,
    DDPMSchedule,
    LatentUNet,
    MaskedAutoencoderViT,
    StudentCNN,
    ViTClassifier,
    ae_loss,
    encoder_state_from_mae,
    grad_cam,
    kd_loss,
)

CFG = CONFIGS["demo"]


def test_autoencoder_and_unet_shapes() -> None:
    torch.manual_seed(0)
    ae = AutoEncoder(CFG).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (2, 4, 16, 16)
    rec, kl = ae(x)
    assert rec.shape == x.shape and kl.shape == (2,) and torch.all(kl >= 0)
    assert torch.isfinite(ae_loss(ae, x))
    unet = LatentUNet(CFG)
    eps = unet(mean, torch.tensor([0, 999]), torch.tensor([1, 3]))  # 3 = the null class
    assert eps.shape == mean.shape and torch.isfinite(eps).all()


def test_ddpm_schedule_values_and_q_sample() -> None:
    s = DDPMSchedule(1000)
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    assert float(s.alpha_bar[0]) == pytest.approx(1 - 1e-4)
    assert float(s.alpha_bar[1]) == pytest.approx((1 - 1e-4) * (1 - s.betas[1].item()))
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1]) and float(s.alpha_bar[-1]) < 1e-4
    z0, noise = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    t = torch.tensor([0, 500])
    zt = s.q_sample(z0, t, noise)
    for b in range(2):
        ab = float(s.alpha_bar[t[b]])
        assert zt[b].flatten() == pytest.approx([math.sqrt(ab) + 2 * math.sqrt(1 - ab)] * 4, rel=1e-5)


class _Zero(torch.nn.Module):
    num_classes = 3

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(z)


def test_ddpm_loss_tiny_case_equals_noise_power() -> None:
    s = DDPMSchedule(10)
    z0 = torch.randn(4, 2, 3, 3)
    y = torch.zeros(4, dtype=torch.long)
    loss = s.loss(_Zero(), z0, y, 0.1, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 10, (4,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    assert float(loss) == pytest.approx(float((noise ** 2).mean()), rel=1e-6)


def test_ddim_sampling_shape_and_zero_predictor_keeps_noise() -> None:
    s = DDPMSchedule(1000)
    g = torch.Generator().manual_seed(0)
    z = s.ddim_sample(_Zero(), torch.tensor([0, 1]), (4, 8, 8), steps=5, guidance=2.0, generator=g)
    z_t = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    # with ε ≡ 0, DDIM maps z_T to z_T / √ᾱ_T (all the signal is "z_0")
    assert z.shape == (2, 4, 8, 8)
    assert torch.allclose(z, z_t / s.alpha_bar[999].sqrt().float(), rtol=1e-4)


def test_mae_masks_75_percent_and_loss_is_on_masked_patches() -> None:
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(CFG)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    loss, pred, mask = mae(x, torch.Generator().manual_seed(1))
    n = (64 // 8) ** 2
    assert pred.shape == (3, n, 8 * 8 * 3) and mask.shape == (3, n)
    assert torch.all(mask.sum(1) == 0.75 * n) and CFG.mask_ratio == 0.75
    kept, m2, restore = mae.random_masking(torch.randn(3, n, 5), 0.75, torch.Generator().manual_seed(2))
    assert kept.shape == (3, n // 4, 5) and torch.all(m2.sum(1) == 48)
    # a prediction equal to the normalised target on masked patches and garbage on visible ones → loss 0
    target = mae.patchify(x)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    fake = torch.where(mask[..., None] > 0, target, torch.full_like(target, 99.0))
    assert float(mae.forward_loss(x, fake, mask)) == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(loss)


def test_teacher_loads_mae_encoder_strictly() -> None:
    mae, vit = MaskedAutoencoderViT(CFG), ViTClassifier(CFG)
    state = encoder_state_from_mae(mae.state_dict())
    state.update({k: v for k, v in vit.state_dict().items() if k.startswith("head.")})
    vit.load_state_dict(state, strict=True)
    assert vit(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    # the MAE module names of the authors' code
    for key in ("patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "norm.weight"):
        assert key in vit.state_dict()
    for key in ("decoder_embed.weight", "mask_token", "decoder_pos_embed", "decoder_pred.weight"):
        assert key in mae.state_dict()


def test_kd_loss_matches_hand_computation() -> None:
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 2])
    T, a = 2.0, 0.6

    def softmax(v: np.ndarray) -> np.ndarray:
        e = np.exp(v - v.max())
        return e / e.sum()

    kl, ce = 0.0, 0.0
    for i in range(2):
        ps, pt = softmax(s[i].numpy() / T), softmax(t[i].numpy() / T)
        kl += float(np.sum(pt * (np.log(pt) - np.log(ps))))
        ce += -float(np.log(softmax(s[i].numpy())[y[i]]))
    want = a * T * T * kl / 2 + (1 - a) * ce / 2
    assert float(kd_loss(s, t, y, T, a)) == pytest.approx(want, rel=1e-6)
    assert float(kd_loss(s, s, y, T, 1.0)) == pytest.approx(0.0, abs=1e-7)


def test_student_shapes_and_grad_cam() -> None:
    torch.manual_seed(0)
    st = StudentCNN(CFG).eval()
    x = torch.randn(2, 3, 64, 64)
    logits = st(x)
    assert logits.shape == (2, 3)
    lg, cam = grad_cam(st, x)
    assert torch.allclose(lg, logits, atol=1e-5)
    assert cam.shape == (2, 8, 8) and torch.all(cam >= 0) and torch.isfinite(cam).all()
    p = F.softmax(logits, 1)
    assert torch.allclose(p.sum(1), torch.ones(2))
