"""RASALoRE stage 2: the < 8 M-parameter segmentation network (BMVC 2025, BheeshmSharma/RASALoRE-BMVC-2025).

Module names follow the authors' code (``Modules/Encoder.py``, ``RASAM.py``, ``Mask_Decoder.py``) so that their
``Encoder_Model.pth`` / ``Decoder_Model.pth`` state dicts load, after prefixing ``encoder.`` / ``decoder.``, with
``strict=True`` into the ``paper`` config (the LoRE matrix is ours: ``lore.positional_embedding``).

Shapes for the paper config (input 1×128×128, B slices):

* :class:`Image_Encoder` — ``e1..e4`` conv blocks 1→32→64→128→256 (``e1``–``e3`` at 128², max-pool, ``e4`` at
  64²) give ``s4 [B, 256, 64, 64]`` = 4096 image tokens of 256; ``adapter1`` (:class:`Refinement_Block`) turns
  ``s1 [B, 32, 128, 128]`` into region features ``[B, 256, 64, 64]``; ``adapter2``
  (:class:`Region_Aware_Spatial_Attention`, 4 heads, learnable positional encoding ``[4096, 256]``) lets the
  1024 candidate points attend to them → point embeddings ``[B, 1024, 256]`` and point activations
  ``[B, 1024, 1]`` (MLP 256→128→64→1, sigmoid).
* :class:`LoRE` — the fixed 32×32 grid of candidate points (every 4 px of the 128² input, the authors' grid)
  with frozen random Fourier location embeddings: ``[1024, 2] @ G[2, 128]`` (G ~ N(0, 1) · 128, a buffer, never
  trained), ``sin``/``cos`` → ``[1024, 256]``.
* :class:`Mask_Decoder` — points cross-attend to image tokens (+ learnable positional encoding
  ``[1, 256, 64, 64]``), ``tokens [B, 4096, 256] @ points [B, 256, 1024]`` → ``[B, 1024, 64, 64]``, two
  transposed convs (×2 each) → 1×1 conv → mask logits ``[B, 1, 256, 256]``.

The ``demo`` config keeps the structure with narrower layers and a 32×32 token grid (input 128, output 128²)
so that it trains in minutes on a 2-core CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.common.config import DictConfig


@dataclass
class RASALoREConfig(DictConfig):
    """Sizes. ``widths``: encoder channels; ``emb``: token/point dim (= widths[-1]); ``token_grid``: side of the
    image-token grid; ``dec``: channels of the two transposed convs; ``grid``: candidate points per side."""

    name: str = "paper"
    input_size: int = 128
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    emb: int = 256
    token_grid: int = 64
    dec: tuple[int, int] = (128, 64)
    grid: int = 32
    heads: int = 4
    ff: tuple[int, int] = (128, 64)
    lore_scale: float = 128.0  # the authors: randn(2, 128) * embed_dim // 2
    dropout: float = 0.1
    extra: dict[str, str] = field(default_factory=dict)



CONFIGS: dict[str, RASALoREConfig] = {
    "paper": RASALoREConfig(),
    "demo": RASALoREConfig(name="demo", widths=(16, 32, 48, 48), emb=48, token_grid=32, dec=(16, 8),
                           ff=(32, 16), lore_scale=24.0),
}


class SamLayerNorm(nn.Module):
    """LayerNorm over channels of ``[B, C, H, W]`` (the authors' ``SamLayerNorm``, channels_first)."""

    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # = (x - mean_c) / sqrt(var_c + eps) · weight + bias, with the biased variance, as the authors compute it
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class conv_block(nn.Module):  # noqa: N801 — the authors' name
    """Two 3×3 convs with ReLU. ``[B, in, H, W]`` → ``[B, out, H, W]``."""

    def __init__(self, in_c: int, out_c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, padding=1)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class encoder_block(nn.Module):  # noqa: N801
    """conv_block → SamLayerNorm → Dropout2d; returns (features ``[B, out, H, W]``, pooled ``[B, out, H/2, W/2]``)."""

    def __init__(self, in_c: int, out_c: int, dropout: float) -> None:
        super().__init__()
        self.conv = conv_block(in_c, out_c)
        self.norm = SamLayerNorm(out_c)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.dropout(self.norm(self.conv(x)))
        return x, F.max_pool2d(x, 2)


class Refinement_Block(nn.Module):  # noqa: N801
    """Region features for the attention: ``s1 [B, w1, S, S]`` → ``[B, emb, G, G]`` (G = token grid)."""

    def __init__(self, w1: int, emb: int, stride: int) -> None:
        super().__init__()
        mid = emb // 2
        self.conv = nn.Sequential(nn.Conv2d(w1, mid // 2, 3, padding=1), nn.BatchNorm2d(mid // 2), nn.ReLU(True))
        self.upconv1 = nn.Sequential(nn.ConvTranspose2d(mid // 2, mid, 3, padding=1), nn.BatchNorm2d(mid),
                                     nn.ReLU(True))
        self.upconv2 = nn.Sequential(nn.ConvTranspose2d(mid, emb, 3, padding=1), nn.BatchNorm2d(emb), nn.ReLU(True))
        self.skip_conv = nn.Conv2d(w1, emb, 1)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.upconv2(self.upconv1(self.conv(x))) + self.skip_conv(x)
        s = self.stride  # the authors: AvgPool2d(4, 2, 1) for stride 2
        return F.avg_pool2d(out, kernel_size=2 * s, stride=s, padding=s // 2)


class Region_Aware_Spatial_Attention(nn.Module):  # noqa: N801
    """RASAM: candidate points attend to region features, per head, with a learnable positional encoding.

    ``img_emb [B, C, G, G]``, ``point_emb [B, P, emb]`` → (activations ``[B, P, 1]`` in (0, 1),
    point embeddings ``[B, P, emb]``).
    """

    def __init__(self, emb: int, num_heads: int, tokens: int, num_channels: int, ff: tuple[int, int]) -> None:
        super().__init__()
        self.emb_dim, self.num_heads = emb, num_heads
        self.query_projections = nn.ModuleList([nn.Linear(emb, emb) for _ in range(num_heads)])
        self.key_projections = nn.ModuleList([nn.Linear(num_channels, emb) for _ in range(num_heads)])
        self.value_projections = nn.ModuleList([nn.Linear(num_channels, emb) for _ in range(num_heads)])
        self.output_proj = nn.Linear(emb * num_heads, emb)
        self.positional_noise_encoding = nn.Parameter(torch.randn(tokens, num_channels))
        self.FF = nn.Sequential(nn.Linear(emb, ff[0]), nn.ReLU(), nn.LayerNorm(ff[0]), nn.Linear(ff[0], ff[1]),
                                nn.ReLU(), nn.LayerNorm(ff[1]), nn.Linear(ff[1], 1), nn.Sigmoid())

    def forward(self, img_emb: Tensor, point_emb: Tensor) -> tuple[Tensor, Tensor]:
        b, p = point_emb.shape[:2]
        tok = img_emb.flatten(2).transpose(1, 2)  # [B, G², C]
        tok_pos = tok + self.positional_noise_encoding[None]
        # The heads' projections run as one linear each and the attention as one fused kernel; the result is
        # the authors' per-head softmax(q kᵀ / √emb) v, heads concatenated in order.
        q = _heads(self.query_projections, point_emb, self.num_heads)
        k = _heads(self.key_projections, tok, self.num_heads)
        v = _heads(self.value_projections, tok_pos, self.num_heads)
        att = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(self.emb_dim))  # [B, H, P, emb]
        pts = self.output_proj(att.transpose(1, 2).reshape(b, p, -1)) + point_emb
        return self.FF(pts).view(b, -1, 1), pts


def _heads(projections: nn.ModuleList, x: Tensor, num_heads: int) -> Tensor:
    """``x [B, N, C]`` through every head's Linear at once → ``[B, H, N, emb]``."""
    w = torch.cat([lin.weight for lin in projections])
    bias = torch.cat([lin.bias for lin in projections])
    y = F.linear(x, w, bias)
    return y.view(x.shape[0], x.shape[1], num_heads, -1).transpose(1, 2)


class Image_Encoder(nn.Module):  # noqa: N801
    """U-Net-style encoder + RASAM. ``x [B, 1, S, S]``, ``point_emb [B, P, emb]`` →
    (activations ``[B, P, 1]``, point embeddings ``[B, P, emb]``, image tokens ``s4 [B, emb, G, G]``)."""

    def __init__(self, cfg: RASALoREConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.e1 = encoder_block(1, w[0], cfg.dropout)
        self.e2 = encoder_block(w[0], w[1], cfg.dropout)
        self.e3 = encoder_block(w[1], w[2], cfg.dropout)
        self.e4 = encoder_block(w[2], w[3], cfg.dropout)
        stride = cfg.input_size // cfg.token_grid
        self.pools = int(round(math.log2(stride)))  # max-pools before e4 (paper: 1, after e3)
        self.adapter1 = Refinement_Block(w[0], cfg.emb, stride)
        self.adapter2 = Region_Aware_Spatial_Attention(cfg.emb, cfg.heads, cfg.token_grid ** 2, cfg.emb, cfg.ff)

    def forward(self, x: Tensor, point_emb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s1, p1 = self.e1(x)
        refined = self.adapter1(s1)
        s2, p2 = self.e2(s1 if self.pools < 3 else p1)
        s3, p3 = self.e3(s2 if self.pools < 2 else p2)
        s4, _ = self.e4(p3)
        act, pts = self.adapter2(refined, point_emb)
        return act, pts, s4


class Mask_Decoder(nn.Module):  # noqa: N801
    """``image_emb [B, emb, G, G]``, ``sparse_emb [B, P, emb]`` → mask logits ``[B, 1, 4G, 4G]``."""

    def __init__(self, cfg: RASALoREConfig) -> None:
        super().__init__()
        p, e, g = cfg.grid ** 2, cfg.emb, cfg.token_grid
        self.cross_attention = nn.MultiheadAttention(e, cfg.heads, batch_first=True)
        self.positional_encoding = nn.Parameter(torch.randn(1, e, g, g))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(p, cfg.dec[0], 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(cfg.dec[0], cfg.dec[1], 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.dec[1], 1, 1))
        self.norm1 = nn.LayerNorm(e)
        self.norm2 = nn.LayerNorm(p)
        self.cross_attention_dropout = nn.Dropout(cfg.dropout)
        #: Set by :func:`for_inference`: run the first transposed conv through :meth:`_folded_upsample`.
        self.fold_upsample = False

    def forward(self, image_emb: Tensor, sparse_emb: Tensor) -> Tensor:
        b, p, e = sparse_emb.shape
        g = image_emb.shape[-1]
        tok = image_emb.flatten(2).transpose(1, 2)
        tok_pos = (image_emb + self.positional_encoding).flatten(2).transpose(1, 2)
        att, _ = self.cross_attention(sparse_emb, tok, tok_pos, need_weights=False)
        pts = self.norm1(self.cross_attention_dropout(att) + sparse_emb)  # [B, P, e]
        if self.fold_upsample:
            return self.upsample[1:](self._folded_upsample(tok, pts, g))
        out = self.norm2(torch.bmm(tok, pts.transpose(1, 2)))  # [B, G², P]
        return self.upsample(out.transpose(1, 2).reshape(b, p, g, g))

    def _folded_upsample(self, tok: Tensor, pts: Tensor, g: int) -> Tensor:
        """``upsample[0](norm2(tok @ ptsᵀ))`` without forming the ``[B, P, G, G]`` product (same function).

        The product ``M[p, y, x] = Σ_c pts[p, c] · tok[y, x, c]`` is linear in the ``e`` token channels, and the
        LayerNorm over ``p`` only shifts and scales each location: its mean is ``p̄ · tok`` and its (biased)
        variance ``tokᵀ Σ tok`` with ``Σ`` the covariance of the points. So the transposed conv over ``P``
        channels equals one over ``e + 2`` channels — ``tok / s``, ``−μ / s`` and ones — with per-slice
        weights ``Σ_p pts[p, c] · γ_p · W[p]``, ``Σ_p γ_p · W[p]`` and ``Σ_p β_p · W[p]`` (γ, β: the norm's
        affine; s = √(var + eps)). For the demo config that is 50 instead of 1024 input channels.
        ``tok [B, G², e]``, ``pts [B, P, e]`` → ``[B, dec0, 2G, 2G]``.
        """
        conv, norm = self.upsample[0], self.norm2
        b, p, e = pts.shape
        w = conv.weight  # [P, O, k, k]
        o, k = w.shape[1], w.shape[2:]
        w_gamma = (w * norm.weight[:, None, None, None]).flatten(1)  # [P, O·k·k]
        mean = pts.mean(1)  # [B, e]
        centred = pts - mean[:, None]
        cov = centred.transpose(1, 2) @ centred / p  # [B, e, e]
        mu = tok @ mean[:, :, None]  # [B, G², 1]
        var = ((tok @ cov) * tok).sum(-1, keepdim=True).clamp_min(0)
        inv_s = torch.rsqrt(var + norm.eps)
        z = torch.cat([tok * inv_s, -mu * inv_s, torch.ones_like(mu)], -1)  # [B, G², e + 2]
        per_slice = torch.cat([
            pts.transpose(1, 2) @ w_gamma,  # [B, e, O·k·k]
            w_gamma.sum(0).expand(b, 1, -1),
            (w * norm.bias[:, None, None, None]).flatten(1).sum(0).expand(b, 1, -1)], 1)
        x = z.transpose(1, 2).reshape(1, b * (e + 2), g, g)
        y = F.conv_transpose2d(x, per_slice.reshape(b * (e + 2), o, *k), conv.bias.repeat(b), conv.stride,
                               conv.padding, groups=b)
        return y.view(b, o, y.shape[-2], y.shape[-1])


class LoRE(nn.Module):
    """Fixed candidate grid + frozen random Fourier location embeddings → ``[P, emb]`` (no parameters).

    Points: ``(row, col) = (gap · i, gap · j)`` on the input, gap = input / grid, row-major. Coordinates are
    scaled to [-1, 1], multiplied by the frozen Gaussian matrix ``positional_embedding [2, emb/2]``, and
    ``[sin(2π·), cos(2π·)]`` concatenated.
    """

    def __init__(self, cfg: RASALoREConfig, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("positional_embedding", torch.randn(2, cfg.emb // 2, generator=g) * cfg.lore_scale)
        gap = cfg.input_size // cfg.grid
        r, c = torch.meshgrid(torch.arange(cfg.grid) * gap, torch.arange(cfg.grid) * gap, indexing="ij")
        self.register_buffer("coords", torch.stack([c.flatten(), r.flatten()], -1).float(), persistent=False)
        self.input_size = cfg.input_size

    def forward(self) -> Tensor:
        xy = 2 * (self.coords / self.input_size) - 1
        z = 2 * math.pi * (xy @ self.positional_embedding)
        return torch.cat([torch.sin(z), torch.cos(z)], -1)


class RASALoRE(nn.Module):
    """Stage-2 network. ``x [B, 1, S, S]`` (S = 128, brain-box crop in [0, 1], gamma 2) →
    ``(mask_logits [B, 1, 4G, 4G], point_activation [B, grid, grid] in (0, 1), point_emb [B, P, emb])``."""

    def __init__(self, cfg: RASALoREConfig) -> None:
        super().__init__()
        self.config = cfg
        self.lore = LoRE(cfg)
        self.encoder = Image_Encoder(cfg)
        self.decoder = Mask_Decoder(cfg)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b = x.shape[0]
        pe = self.lore().to(x.dtype)[None].expand(b, -1, -1)
        act, pts, s4 = self.encoder(x, pe)
        logits = self.decoder(s4, pts)
        g = self.config.grid
        return logits, act.view(b, g, g), pts


def for_inference(model: RASALoRE) -> RASALoRE:
    """The same function, rewritten for fast CPU inference (in place; eval mode; never train it afterwards).

    * each stride-1 ``ConvTranspose2d`` of the Refinement Block becomes the equivalent ``Conv2d`` (kernel flipped,
      in/out swapped, padding ``k - 1 - p``), and every ``BatchNorm2d`` there is folded into the conv before it;
    * the decoder's first transposed conv is folded through the token–point product
      (:meth:`Mask_Decoder._folded_upsample`): ``e + 2`` instead of ``P`` input channels;
    * channels-last memory format, which the oneDNN convolutions prefer.

    Outputs match the original model to float rounding (a test checks it); the state dict's keys change, so
    save weights before calling this.
    """
    model.eval()
    for block in model.modules():
        if isinstance(block, nn.Sequential):
            for i, m in enumerate(block):
                if isinstance(m, nn.ConvTranspose2d) and m.stride == (1, 1) and m.groups == 1:
                    block[i] = _as_conv(m)
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = _fold_batchnorm(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
    model.decoder.fold_upsample = True
    return model.to(memory_format=torch.channels_last)


def _as_conv(t: nn.ConvTranspose2d) -> nn.Conv2d:
    k, p = t.kernel_size, t.padding
    conv = nn.Conv2d(t.in_channels, t.out_channels, k, padding=(k[0] - 1 - p[0], k[1] - 1 - p[1]),
                     bias=t.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(t.weight.flip(2, 3).transpose(0, 1))
        if t.bias is not None:
            conv.bias.copy_(t.bias)
    return conv


def _fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((b - bn.running_mean) * scale + bn.bias)
    return fused


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as the LoRE matrix excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def sample_grid(mask: Tensor, grid: int) -> Tensor:
    """The pseudo-mask at the candidate points: ``[B, S, S]`` → ``[B, grid, grid]`` (rows/cols ``gap · i``)."""
    gap = mask.shape[-1] // grid
    return mask[..., ::gap, ::gap][..., :grid, :grid]
