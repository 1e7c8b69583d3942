"""DERMAE networks: latent autoencoder, class-conditional latent DDPM, MAE ViT teacher, CNN student.

Shapes use ``B`` batch, ``S`` image side, ``C`` classes (3: melanoma, seborrheic keratosis, nevus).

* :class:`AutoEncoder` — KL-regularised conv autoencoder (as in latent diffusion's "KL-f4"): image
  ``[B, 3, S, S]`` in [-1, 1] → latent ``[B, z, S/4, S/4]`` (mean; a sample when training) → image.
* :class:`LatentUNet` — class-conditional noise predictor ε(z_t, t, y) on latents ``[B, z, S/4, S/4]``;
  label ``C`` is the "null" class used for classifier-free guidance.
* :class:`DDPMSchedule` — linear β schedule (1e-4 … 0.02, T = 1000), ``q_sample``, ε-MSE loss and
  deterministic DDIM sampling (η = 0) with classifier-free guidance.
* :class:`MaskedAutoencoderViT` — MAE (He et al. 2022) with the authors' module names
  (facebookresearch/mae ``models_mae.py``: ``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.N``,
  ``norm``, ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks.N``, ``decoder_norm``,
  ``decoder_pred``); random masking of 75 % of the patches, loss on masked patches (per-patch normalised).
* :class:`ViTClassifier` — the teacher: the MAE encoder (same keys) + ``head``; the [CLS] token classifies.
* :class:`StudentCNN` — a small CNN for a laptop CPU; :func:`grad_cam` on its last block is the saliency.
* :func:`kd_loss` — Hinton distillation: ``α T² KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) CE(s, y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.common.config import DictConfig

NUM_CLASSES = 3


# ---- configs -------------------------------------------------------------------------------------------
@dataclass
class DermaeConfig(DictConfig):
    """All sizes of the pipeline. ``demo`` trains on a 2-core CPU; ``paper`` is the paper-scale layout."""

    name: str = "demo"
    image_size: int = 64
    num_classes: int = NUM_CLASSES
    # autoencoder
    ae_channels: tuple[int, ...] = (32, 64)
    z_channels: int = 4
    # latent denoiser
    unet_channels: tuple[int, ...] = (48, 96, 96)
    timesteps: int = 1000
    # ViT teacher (MAE)
    patch_size: int = 8
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 64
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    mask_ratio: float = 0.75
    # student
    student_widths: tuple[int, ...] = (24, 48, 96, 128)
    extra: dict[str, Any] = field(default_factory=dict)



CONFIGS: dict[str, DermaeConfig] = {
    "demo": DermaeConfig(),
    # paper scale: ViT-Huge/14 teacher at 224 px, MAE decoder 512-d × 8, larger latent model, wider student
    "paper": DermaeConfig(name="paper", image_size=224, ae_channels=(128, 256), z_channels=4,
                          unet_channels=(192, 384, 576), patch_size=14, embed_dim=1280, depth=32, num_heads=16,
                          decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
                          student_widths=(32, 64, 128, 256)),
    # the shipped student since issue 18: the demo student at 128 px (16 × 16 Grad-CAM grid)
    "student128": DermaeConfig(name="student128", image_size=128),
}


# ---- autoencoder ---------------------------------------------------------------------------------------
def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv ×2 with a skip; optional additive embedding ``emb [B, E]``. ``[B,cin,H,W]→[B,cout,H,W]``."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None = None) -> None:
        super().__init__()
        self.norm1, self.conv1 = _gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout) if emb_dim else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None and emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AutoEncoder(nn.Module):
    """KL-regularised autoencoder, downsampling ×4. Image ``[B,3,S,S]`` ∈ [-1,1] ↔ latent ``[B,z,S/4,S/4]``.

    Encoder: stride-2 4×4 conv (S/2) → ResBlock → stride-2 conv (S/4) → ResBlock → 2z channels (mean, logvar).
    Decoder: the mirror, ending in a stride-2 transposed conv back to S.
    """

    def __init__(self, cfg: DermaeConfig) -> None:
        super().__init__()
        c1, c2 = cfg.ae_channels
        z = cfg.z_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 4, stride=2, padding=1), ResBlock(c1, c1), nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            ResBlock(c2, c2), _gn(c2), nn.SiLU(), nn.Conv2d(c2, 2 * z, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(z, c2, 3, padding=1), ResBlock(c2, c2), nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c1, 3, padding=1), ResBlock(c1, c1), _gn(c1), nn.SiLU(),
            nn.ConvTranspose2d(c1, 3, 4, stride=2, padding=1))
        # latents are divided by this before diffusion (set from the training latents' std, as in LDM)
        self.register_buffer("scale_factor", torch.ones(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B,3,S,S]`` → (mean, logvar), each ``[B,z,S/4,S/4]``."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-20, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[B,z,S/4,S/4]`` → image ``[B,3,S,S]`` (unbounded; clamp to [-1, 1] for display)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reconstruction ``[B,3,S,S]``, KL per sample ``[B]``) with a reparameterised sample."""
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)
        return self.decode(z), kl


def ae_loss(model: AutoEncoder, x: torch.Tensor, kl_weight: float = 1e-5) -> torch.Tensor:
    """L1 + MSE reconstruction + ``kl_weight`` · KL (mean over batch). ``x [B,3,S,S]`` → scalar."""
    rec, kl = model(x)
    return (rec - x).abs().mean() + F.mse_loss(rec, x) + kl_weight * kl.mean()


# ---- latent diffusion ----------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``t [B]`` → ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([a.cos(), a.sin()], dim=1)


class SelfAttention2d(nn.Module):
    """Single-head self-attention over the pixels of ``[B, C, H, W]`` (residual)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = _gn(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class LatentUNet(nn.Module):
    """ε-prediction U-Net on latents. ``z [B,z,L,L]``, ``t [B]`` int, ``y [B]`` int (``C`` = null) → ``[B,z,L,L]``."""

    def __init__(self, cfg: DermaeConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.unet_channels
        e = 4 * c1
        self.num_classes = cfg.num_classes
        self.time_mlp = nn.Sequential(nn.Linear(c1, e), nn.SiLU(), nn.Linear(e, e))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, e)
        self.conv_in = nn.Conv2d(cfg.z_channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, e)
        self.ds1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down2 = ResBlock(c2, c2, e)
        self.ds2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.mid1, self.mid_attn, self.mid2 = ResBlock(c3, c3, e), SelfAttention2d(c3), ResBlock(c3, c3, e)
        self.us2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c3, c2, 3, padding=1))
        self.up2 = ResBlock(2 * c2, c2, e)
        self.us1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c1, 3, padding=1))
        self.up1 = ResBlock(2 * c1, c1, e)
        self.out = nn.Sequential(_gn(c1), nn.SiLU(), nn.Conv2d(c1, cfg.z_channels, 3, padding=1))
        self._c1 = c1

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self._c1)) + self.class_emb(y)
        h1 = self.down1(self.conv_in(z), emb)
        h2 = self.down2(self.ds1(h1), emb)
        h = self.mid2(self.mid_attn(self.mid1(self.ds2(h2), emb)), emb)
        h = self.up2(torch.cat([self.us2(h), h2], 1), emb)
        h = self.up1(torch.cat([self.us1(h), h1], 1), emb)
        return self.out(h)


class DDPMSchedule:
    """Linear-β DDPM (Ho et al. 2020) with DDIM sampling (Song et al. 2021).

    ``betas[t] = linspace(beta_start, beta_end, T)``, ``alpha_bar[t] = Π_{s≤t} (1 − beta[s])``;
    ``q(z_t | z_0) = N(√ᾱ_t z_0, (1 − ᾱ_t) I)``.
    """

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        self.T = timesteps
        self.betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        self.alpha_bar = torch.cumprod(1.0 - self.betas, 0)

    def q_sample(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε``; ``z0, noise [B,...]``, ``t [B]``."""
        ab = self.alpha_bar.to(z0.device)[t].float().view(-1, *([1] * (z0.dim() - 1)))
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise

    def loss(self, model: nn.Module, z0: torch.Tensor, y: torch.Tensor, p_uncond: float = 0.1,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """ε-MSE at uniform random t; labels replaced by the null class with probability ``p_uncond``."""
        b = z0.shape[0]
        t = torch.randint(0, self.T, (b,), generator=generator).to(z0.device)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        drop = torch.rand(b, generator=generator).to(z0.device) < p_uncond
        y = torch.where(drop, torch.full_like(y, model.num_classes), y)  # type: ignore[attr-defined]
        return F.mse_loss(model(self.q_sample(z0, t, noise), t, y), noise)

    @torch.no_grad()
    def ddim_sample(self, model: nn.Module, y: torch.Tensor, shape: tuple[int, ...], steps: int = 50,
                    guidance: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Deterministic DDIM (η = 0) from pure noise, classifier-free guidance ``w``:
        ``ε = ε(z, y) + w (ε(z, y) − ε(z, ∅))``. Returns ``z_0 [B, *shape]``."""
        b = y.shape[0]
        z = torch.randn((b, *shape), generator=generator).to(y.device)
        ts = np.linspace(self.T - 1, 0, steps).round().astype(int)
        null = torch.full_like(y, model.num_classes)  # type: ignore[attr-defined]
        ab = self.alpha_bar.to(y.device)
        for i, t in enumerate(ts):
            tt = torch.full((b,), int(t), device=y.device, dtype=torch.long)
            eps = model(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([y, null]))
            e_c, e_u = eps.chunk(2)
            e = e_c + guidance * (e_c - e_u)
            a_t = ab[t].float()
            a_prev = ab[ts[i + 1]].float() if i + 1 < len(ts) else torch.tensor(1.0, device=y.device)
            z0 = (z - (1 - a_t).sqrt() * e) / a_t.sqrt()
            z = a_prev.sqrt() * z0 + (1 - a_prev).sqrt() * e
        return z


# ---- ViT / MAE -----------------------------------------------------------------------------------------
def sincos_pos_embed(dim: int, grid: int, cls_token: bool = True) -> np.ndarray:
    """2D sine-cosine position embedding as in MAE: ``[grid² (+1), dim]`` (a zero row for [CLS])."""
    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh, gw = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    emb = np.concatenate([one_d(dim // 2, gw), one_d(dim // 2, gh)], axis=1)  # (w, h) as MAE's grid order
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return emb.astype(np.float32)


class PatchEmbed(nn.Module):
    """``[B,3,S,S]`` → ``[B, (S/p)², D]`` by a stride-p conv (``proj``)."""

    def __init__(self, img_size: int, patch: int, dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch) ** 2
        self.patch_size = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention ``[B,N,D]`` → ``[B,N,D]`` (timm names ``qkv``, ``proj``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm names ``norm1``, ``attn``, ``norm2``, ``mlp``). ``[B,N,D]`` → same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _ViTEncoder(nn.Module):
    def _build_encoder(self, cfg: DermaeConfig) -> None:
        self.patch_embed = PatchEmbed(cfg.image_size, cfg.patch_size, cfg.embed_dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(cfg.embed_dim, int(n ** 0.5)))[None],
                                      requires_grad=False)
        self.blocks = nn.ModuleList([Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)


class MaskedAutoencoderViT(_ViTEncoder):
    """MAE: encoder on the visible 25 % of patches, light decoder reconstructs all patches.

    ``forward(imgs [B,3,S,S])`` → (loss, pred ``[B, N, p²·3]``, mask ``[B, N]`` with 1 = masked).
    """

    def __init__(self, cfg: DermaeConfig, norm_pix_loss: bool = True) -> None:
        super().__init__()
        self._build_encoder(cfg)
        self.mask_ratio = cfg.mask_ratio
        self.norm_pix_loss = norm_pix_loss
        n = self.patch_embed.num_patches
        dd = cfg.decoder_embed_dim
        self.decoder_embed = nn.Linear(cfg.embed_dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(dd, int(n ** 0.5)))[None],
                                              requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio)
                                             for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, cfg.patch_size ** 2 * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S]`` → ``[B, N, p²·3]`` (row-major patches, channels last inside a patch)."""
        p = self.patch_embed.patch_size
        b, c, h, w = imgs.shape
        x = imgs.reshape(b, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep ``N·(1 − mask_ratio)`` random tokens of ``x [B,N,D]``.

        Returns (kept ``[B, K, D]``, mask ``[B, N]`` 1 = removed, ids_restore ``[B, N]``).
        """
        b, n, d = x.shape
        keep = int(n * (1 - mask_ratio))
        noise = torch.rand(b, n, generator=generator).to(x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(self, x: torch.Tensor, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        x, mask, ids_restore = self.random_masking(x, self.mask_ratio, generator)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], 1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(x)
        b, n = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(b, n + 1 - x.shape[1], -1)], 1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], 1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on the masked patches only (targets per-patch normalised if ``norm_pix_loss``)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent, mask, ids_restore = self.forward_encoder(imgs, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


class ViTClassifier(_ViTEncoder):
    """The teacher: MAE encoder keys + ``head``. ``[B,3,S,S]`` → logits ``[B, C]`` from the [CLS] token."""

    def __init__(self, cfg: DermaeConfig) -> None:
        super().__init__()
        self._build_encoder(cfg)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], 1)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


def encoder_state_from_mae(mae_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder part of an MAE state dict (keys shared with :class:`ViTClassifier`, no decoder)."""
    return {k: v for k, v in mae_state.items() if not (k.startswith("decoder") or k == "mask_token")}


# ---- student -------------------------------------------------------------------------------------------
class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class StudentCNN(nn.Module):
    """Small CNN: 4 stages (stride 2, 2, 2, 1), two 3×3 conv-BN-ReLU each, GAP, linear.

    ``features(x [B,3,S,S])`` → ``[B, W4, S/8, S/8]`` (the Grad-CAM layer); ``forward`` → logits ``[B, C]``.
    """

    def __init__(self, cfg: DermaeConfig) -> None:
        super().__init__()
        self.image_size = cfg.image_size
        w = cfg.student_widths
        strides = (2, 2, 2, 1)
        layers: list[nn.Module] = []
        cin = 3
        for cout, s in zip(w, strides, strict=True):
            layers.append(nn.Sequential(ConvBNAct(cin, cout, s), ConvBNAct(cout, cout)))
            cin = cout
        self.stages = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(cin, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(feats.mean((2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def grad_cam(model: StudentCNN, x: torch.Tensor, target: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM (Selvaraju et al. 2017) on the student's last stage.

    ``cam = ReLU(Σ_k α_k A_k)``, ``α_k = mean_ij ∂y_c/∂A_k,ij``. ``x [B,3,S,S]``, ``target [B]`` (default: the
    argmax class). Returns (logits ``[B, C]``, cam ``[B, S/8, S/8]`` ≥ 0, not normalised).
    """
    with torch.enable_grad():
        feats = model.features(x).detach().requires_grad_(True)
        logits = model.classify(feats)
        t = logits.argmax(1) if target is None else target
        score = logits.gather(1, t[:, None]).sum()
        (grads,) = torch.autograd.grad(score, feats)
    cam = F.relu((grads.mean((2, 3), keepdim=True) * feats).sum(1))
    return logits.detach(), cam.detach()


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.7, class_weight: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Hinton et al. 2015: ``α T² KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) CE(s, y)``.

    KL is summed over classes and averaged over the batch. ``*_logits [B, C]``, ``labels [B]`` → scalar.
    """
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean")
    ce = F.cross_entropy(student_logits, labels, weight=class_weight)
    return alpha * t * t * kl + (1 - alpha) * ce


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


MODELS = {"ae": AutoEncoder, "ldm": LatentUNet, "mae": MaskedAutoencoderViT, "teacher": ViTClassifier,
          "student": StudentCNN}
