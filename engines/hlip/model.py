"""HLIP model: a ViT on 3D patches with hierarchical (slice / scan / study) attention + a text tower, CLIP loss.

Module names follow the authors' open_clip ``CustomTextCLIP`` (``Zch0414/hlip``; see
``../shared/reference/hlip_spec.md``) so that a converted official checkpoint loads with ``strict=True``::

    visual.trunk.{cls_token, reg_token?, spatial_posemb, sequential_posemb?, patch_embed.proj,
                  blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm}
    visual.head.proj                       Linear (no bias): C → E (v1 "cls") or P·... 2C → E ("dinotxt")
    text.transformer.*                     BERT without pooler (paper configs) — absent in the demo config
    text.proj                              Linear (no bias): text width → E
    logit_scale [], logit_bias [] (dual variants only)

Shapes (B studies, N scans per study, one channel, scan D×H×W, patch pd×ph×pw, grid D'×H'×W' =
D/pd × H/ph × W/pw, width C, P prefix tokens):

* input ``[B, N, 1, D, H, W]`` → Conv3d per scan → patch tokens ``[B, N, D', H', W', C]``
  (+ ``spatial_posemb [1, D', H', W', C]``, trilinearly resampled when the grid differs,
  + ``sequential_posemb[:, :N]`` broadcast over each scan's tokens when ``max_num_scans > 0``).
* Each block attends inside a scope (:data:`LEVELS`): ``slice`` = the H'·W' tokens of one depth index of one
  scan (a slice group of ``pd`` slices); ``scan`` = the D'·H'·W' tokens of one scan; ``study`` = all
  N·D'·H'·W' tokens. The prefix tokens are prepended to every sequence: when the scope widens the prefix copies
  of the merged sequences are averaged, when it narrows they are copied into every part. After the last block
  everything is merged to study level, then the final LayerNorm.
* Head: ``cls`` (v1) = CLS → ``head.proj`` → ``[B, E]``; ``dinotxt`` = concat(prefix_p, mean of all patch
  tokens) → ``head.proj`` → ``[B, P, E]`` (prefix 0 is the image embedding). Embeddings are L2-normalised.
* Dense features for the similarity heatmap (:meth:`HLIP.encode_image`): each patch token after the final
  norm through the patch part of the head (``cls``: the whole ``head.proj``; ``dinotxt``: its second half,
  the columns that act on the mean patch token) → ``[B, N, D', H', W', E]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engines.common.config import DictConfig

LEVELS = ("slice", "scan", "study")
BlockHook = Callable[[int, str], None]


@dataclass
class HLIPConfig(DictConfig):
    """Architecture of one HLIP variant (see :mod:`engines.hlip.configs` for the named ones)."""

    name: str = "demo"
    width: int = 192
    depth: int = 6
    heads: int = 3
    mlp_ratio: float = 4.0
    input_size: tuple[int, int, int] = (48, 96, 96)  # D, H, W per scan
    patch_size: tuple[int, int, int] = (8, 16, 16)
    max_num_scans: int = 40  # rows of sequential_posemb; 0 = no sequential posemb
    num_prefix: int = 1  # 1 = CLS, 2 = CLS + REG
    slice_blocks: tuple[int, ...] = (0, 3)
    scan_blocks: tuple[int, ...] = (1, 4)
    study_blocks: tuple[int, ...] = (2, 5)
    head: str = "dinotxt"  # "cls" or "dinotxt"
    embed_dim: int = 256
    text: str = "minilm"  # "minilm" (frozen sentence embeddings in, demo) or "bert" (authors' text tower)
    text_width: int = 384  # 384 for MiniLM sentence embeddings; 768 for BERT
    bert_layers: int = 12
    bert_heads: int = 12
    bert_vocab: int = 30522
    bert_positions: int = 512
    text_context: int = 256  # tokens per prompt (open_clip context length: 256 brain/head, 512 chest CT)
    logit_bias: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_size = tuple(int(x) for x in self.input_size)  # type: ignore[assignment]
        self.patch_size = tuple(int(x) for x in self.patch_size)  # type: ignore[assignment]
        for k in ("slice_blocks", "scan_blocks", "study_blocks"):
            setattr(self, k, tuple(int(x) for x in getattr(self, k)))
        got = sorted(self.slice_blocks + self.scan_blocks + self.study_blocks)
        if got != list(range(self.depth)):
            raise ValueError(f"every block needs exactly one level; got {got} for depth {self.depth}")
        if self.head not in ("cls", "dinotxt"):
            raise ValueError(f"unknown head {self.head!r}")
        if self.text not in ("minilm", "bert"):
            raise ValueError(f"unknown text tower {self.text!r}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Trained token grid (D', H', W')."""
        return tuple(s // p for s, p in zip(self.input_size, self.patch_size, strict=True))  # type: ignore[return-value]

    def level(self, block: int) -> str:
        """Attention level of block ``block``."""
        if block in self.slice_blocks:
            return "slice"
        if block in self.scan_blocks:
            return "scan"
        return "study"



# ---- position tables -------------------------------------------------------------------------------
def sincos_1d(n: int, dim: int) -> torch.Tensor:
    """``[n, dim]`` 1-D sin-cos table: sin half then cos half, ω_i = 10000^(−i/(dim/2))."""
    half = dim // 2
    omega = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float64) / half))
    pos = torch.arange(n, dtype=torch.float64)[:, None] * omega[None]
    out = torch.zeros(n, dim, dtype=torch.float64)
    out[:, :half] = torch.sin(pos)
    out[:, half:2 * half] = torch.cos(pos)
    return out.float()


def sincos_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """``[1, D', H', W', dim]``: from-scratch 3-D sin-cos (dim/3 per axis, rounded down to even; rest zero)."""
    per = (dim // 3) // 2 * 2
    d, h, w = grid
    out = torch.zeros(d, h, w, dim)
    out[..., :per] = sincos_1d(d, per)[:, None, None, :]
    out[..., per:2 * per] = sincos_1d(h, per)[None, :, None, :]
    out[..., 2 * per:3 * per] = sincos_1d(w, per)[None, None, :, :]
    return out[None]


def resample_posemb(pe: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """``[1, D', H', W', C]`` → ``[1, *grid, C]`` by trilinear interpolation in float32 (identity if equal)."""
    if tuple(pe.shape[1:4]) == tuple(grid):
        return pe
    x = pe.float().permute(0, 4, 1, 2, 3)
    x = F.interpolate(x, size=grid, mode="trilinear", align_corners=False)
    return x.permute(0, 2, 3, 4, 1).to(pe.dtype)


# ---- ViT pieces (timm names) -------------------------------------------------------------------------
class PatchEmbed3D(nn.Module):
    """``[B·N, 1, D, H, W]`` → ``[B·N, C, D', H', W']`` (Conv3d, kernel = stride = patch)."""

    def __init__(self, patch: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(1, width, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention over ``[S, L, C]`` sequences (timm ``Attention``: fused qkv, proj)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=True)
        self.proj = nn.Linear(width, width, bias=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s, n, c = x.shape
        qkv = self.qkv(x).reshape(s, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(s, n, c))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm ``Block``; LayerNorm eps 1e-6, GELU, no layer-scale)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def n_groups(level: str, n_scans: int, depth: int) -> int:
    """Number of attention groups per study at ``level`` (study 1, scan N, slice N·D')."""
    return {"study": 1, "scan": n_scans, "slice": n_scans * depth}[level]


def regroup_prefix(prefix: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, G, P, C]`` → ``[B, groups, P, C]``: average merged groups (widening) or copy (narrowing).

    Groups are nested in order (study ⊃ scan ⊃ slice, scan-major then depth), so widening is a mean over
    consecutive groups and narrowing a ``repeat_interleave``.
    """
    g = prefix.shape[1]
    if groups == g:
        return prefix
    if groups < g:
        return prefix.reshape(prefix.shape[0], groups, g // groups, *prefix.shape[2:]).mean(2)
    return prefix.repeat_interleave(groups // g, dim=1)


def scope_ids(level: str, n_scans: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """Group id of every patch token of one study, flattened scan-major, then depth, row, column: ``[N·D'·H'·W']``.

    Two tokens may attend to each other at ``level`` iff their ids are equal (used by tests and docs).
    """
    d, h, w = grid
    scan = torch.arange(n_scans)[:, None, None, None].expand(n_scans, d, h, w)
    dep = torch.arange(d)[None, :, None, None].expand(n_scans, d, h, w)
    if level == "study":
        ids = torch.zeros(n_scans, d, h, w, dtype=torch.long)
    elif level == "scan":
        ids = scan.clone()
    else:
        ids = scan * d + dep
    return ids.reshape(-1)


class HLIPVisualEncoder(nn.Module):
    """The trunk: 3D patch embedding, position tables, hierarchical blocks, final norm (timm names)."""

    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        if cfg.num_prefix > 1:
            self.reg_token = nn.Parameter(torch.zeros(1, cfg.num_prefix - 1, c))
        self.spatial_posemb = nn.Parameter(sincos_3d(cfg.grid, c), requires_grad=False)
        if cfg.max_num_scans > 0:
            self.sequential_posemb = nn.Parameter(sincos_1d(cfg.max_num_scans, c)[None], requires_grad=False)
        self.patch_embed = PatchEmbed3D(cfg.patch_size, c)
        self.blocks = nn.ModuleList(Block(c, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(c, eps=1e-6)
        nn.init.normal_(self.cls_token, std=1e-6)
        if cfg.num_prefix > 1:
            nn.init.normal_(self.reg_token, std=1e-6)
        self.apply(_init_weights)

    def prefix_tokens(self) -> torch.Tensor:
        """``[1, P, C]``."""
        if self.cfg.num_prefix > 1:
            return torch.cat([self.cls_token, self.reg_token], dim=1)
        return self.cls_token

    def embed(self, x: torch.Tensor, on_scan: Callable[[int], None] | None = None) -> torch.Tensor:
        """``[B, N, 1, D, H, W]`` → patch tokens with positions ``[B, N, D', H', W', C]`` (one scan at a time)."""
        b, n = x.shape[:2]
        toks = []
        for s in range(n):
            t = self.patch_embed(x[:, s])  # [B, C, D', H', W']
            toks.append(t.permute(0, 2, 3, 4, 1))
            if on_scan is not None:
                on_scan(s)
        t = torch.stack(toks, dim=1)
        t = t + resample_posemb(self.spatial_posemb, tuple(t.shape[2:5]))[:, None].to(t.dtype)
        if self.cfg.max_num_scans > 0:
            seq = self.sequential_posemb
            if n > seq.shape[1]:
                seq = F.interpolate(seq.transpose(1, 2), size=n, mode="linear", align_corners=False).transpose(1, 2)
            t = t + seq[:, :n, None, None, None, :].to(t.dtype)
        return t

    def run_blocks(self, patches: torch.Tensor, on_block: BlockHook | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hierarchical blocks on ``[B, N, D', H', W', C]``; returns (prefix ``[B, P, C]``, patches, both normed)."""
        b, n, d, h, w, c = patches.shape
        prefix = self.prefix_tokens().expand(b, -1, -1)[:, None]  # [B, 1, P, C] (study level)
        p = prefix.shape[2]
        x = patches
        for i, blk in enumerate(self.blocks):
            level = self.cfg.level(i)
            g = n_groups(level, n, d)
            prefix = regroup_prefix(prefix, g)
            seq = torch.cat([prefix.reshape(b * g, p, c), x.reshape(b * g, -1, c)], dim=1)
            seq = blk(seq)
            prefix = seq[:, :p].reshape(b, g, p, c)
            x = seq[:, p:].reshape(b, n, d, h, w, c)
            if on_block is not None:
                on_block(i, level)
        prefix = regroup_prefix(prefix, 1)[:, 0]
        return self.norm(prefix), self.norm(x)

    def forward(self, x: torch.Tensor, on_block: BlockHook | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run_blocks(self.embed(x), on_block)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class VisualHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim, bias=False)


class HLIPVisual(nn.Module):
    """``visual``: trunk + head. :meth:`forward` → (image embedding ``[B, E]``, dense ``[B, N, D', H', W', E]``)."""

    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = HLIPVisualEncoder(cfg)
        in_dim = cfg.width if cfg.head == "cls" else 2 * cfg.width
        self.head = VisualHead(in_dim, cfg.embed_dim)

    def project(self, prefix: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normed tokens → (un-normalised image embedding ``[B, E]`` from prefix 0, dense ``[B, N, D', H', W', E]``)."""
        c = self.cfg.width
        wt = self.head.proj.weight  # [E, in]
        if self.cfg.head == "cls":
            return prefix[:, 0] @ wt.t(), patches @ wt.t()
        mean = patches.flatten(1, 4).mean(1)
        img = torch.cat([prefix[:, 0], mean], dim=-1) @ wt.t()
        return img, patches @ wt[:, c:].t()

    def forward(self, x: torch.Tensor, on_block: BlockHook | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        prefix, patches = self.trunk(x, on_block)
        return self.project(prefix, patches)


# ---- text towers -------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        h = cfg.text_width
        self.word_embeddings = nn.Embedding(cfg.bert_vocab, h, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.bert_positions, h)
        self.token_type_embeddings = nn.Embedding(2, h)
        self.LayerNorm = nn.LayerNorm(h, eps=1e-12)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)[None]
        e = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(e)


class _Lin(nn.Module):
    def __init__(self, i: int, o: int, ln: bool = False) -> None:
        super().__init__()
        self.dense = nn.Linear(i, o)
        if ln:
            self.LayerNorm = nn.LayerNorm(o, eps=1e-12)


class BertSelfAttention(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)


class BertAttention(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(h)
        self.output = _Lin(h, h, ln=True)


class BertLayer(nn.Module):
    """HF ``BertLayer`` names: attention.self.{query,key,value}, attention.output, intermediate, output."""

    def __init__(self, h: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention = BertAttention(h)
        self.intermediate = _Lin(h, 4 * h)
        self.output = _Lin(4 * h, h, ln=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        sa = self.attention.self

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, h // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(sa.query(x)), split(sa.key(x)), split(sa.value(x)),
                                           attn_mask=mask[:, None, None, :])
        y = y.transpose(1, 2).reshape(b, n, h)
        ao = self.attention.output
        x = ao.LayerNorm(ao.dense(y) + x)
        z = self.output.dense(F.gelu(self.intermediate.dense(x)))
        return self.output.LayerNorm(z + x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg.text_width, cfg.bert_heads) for _ in range(cfg.bert_layers))


class BertModel(nn.Module):
    """HF ``BertModel`` without pooler (state-dict names identical); CLS of the last hidden state is pooled."""

    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x[:, 0]


class TextTower(nn.Module):
    """``text``: BERT (+ ``proj``) for the paper configs; for the demo only ``proj`` on frozen MiniLM vectors.

    Input: token ids ``[T, L]`` (bert) or sentence embeddings ``[T, 384]`` (minilm). Output ``[T, E]``.
    """

    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.text == "bert":
            self.transformer = BertModel(cfg)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)
        nn.init.trunc_normal_(self.proj.weight, std=cfg.text_width ** -0.5)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.cfg.text == "bert":
            t = self.transformer(t)
        return self.proj(t)


class HLIP(nn.Module):
    """The whole language–image model (``visual``, ``text``, ``logit_scale``[, ``logit_bias``])."""

    def __init__(self, cfg: HLIPConfig) -> None:
        super().__init__()
        self.config = cfg
        self.visual = HLIPVisual(cfg)
        self.text = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if cfg.logit_bias:
            self.logit_bias = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, x: torch.Tensor, on_block: BlockHook | None = None,
                     normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N, 1, D, H, W]`` → (image ``[B, E]``, dense patch features ``[B, N, D', H', W', E]``), normalised."""
        img, dense = self.visual(x, on_block)
        if normalize:
            img, dense = F.normalize(img, dim=-1), F.normalize(dense, dim=-1)
        return img, dense

    def encode_text(self, t: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Token ids ``[T, L]`` or MiniLM vectors ``[T, 384]`` → ``[T, E]`` (normalised)."""
        z = self.text(t)
        return F.normalize(z, dim=-1) if normalize else z

    def forward(self, images: Sequence[torch.Tensor], text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward: studies in groups of equal shape ``[B_g, N_g, 1, D, H, W]`` (e.g. MRI, CT) and one text
        per study (``[ΣB_g, …]``) → normalised (image ``[ΣB_g, E]``, text ``[ΣB_g, E]``)."""
        img = torch.cat([self.encode_image(x)[0] for x in images])
        return img, self.encode_text(text)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
              text_ids: Sequence[Any] | None = None) -> torch.Tensor:
    """Symmetric CLIP loss of normalised ``img [B, E]`` and ``txt [B, E]``; scale = exp(logit_scale).

    ``L = ½ (CE(s·I·Tᵀ, y) + CE(s·T·Iᵀ, y))`` with ``y_ij = 1[i = j]``. When ``text_ids`` is given, pairs whose
    texts are identical are positives too (``y_ij = 1[id_i = id_j]`` normalised per row) — with all ids distinct
    this is exactly the CLIP loss; it only stops duplicate reports in a tiny batch acting as negatives.
    """
    s = logit_scale.clamp(max=math.log(100.0)).exp()
    logits = s * img @ txt.t()
    if text_ids is None:
        y = torch.arange(img.shape[0], device=img.device)
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y))
    ids = list(text_ids)
    t = torch.tensor([[float(a == b) for b in ids] for a in ids], device=img.device, dtype=logits.dtype)
    t = t / t.sum(1, keepdim=True)
    lp_i = F.log_softmax(logits, dim=1)
    lp_t = F.log_softmax(logits.t(), dim=1)
    return 0.5 * (-(t * lp_i).sum(1).mean() - (t * lp_t).sum(1).mean())


__all__ = ["HLIP", "HLIPConfig", "LEVELS", "clip_loss", "scope_ids", "regroup_prefix", "resample_posemb",
           "sincos_1d", "sincos_3d"]
