"""Lucent engine: RadZero free-text grounding — type a finding, see where the model grounds it.

Qt-free; torch and the sentence encoder are imported lazily inside :meth:`RadZeroEngine.run` (which the app
calls in a worker thread), so importing this module and the registry stays cheap.

Per run: the radiograph is checked, normalised (0.5/99.5 percentiles, as multires_cxr) and squashed to the
config's S × S; its head-ready tokens are **cached per image** (key: a BLAKE2 hash of the array bytes, shape
and dtype, plus the loaded weights), so each further query costs only text encoding + the VL-CABS head. The
query becomes the prompt "There is {query}." (a typed sentence is kept as typed), its negation "There is no
{query}." gives the zero-shot probability softmax(logit_pos, logit_neg); without a query the engine scores
every class of :data:`engines.radzero.prepare.CLASS_NAMES` and maps the most probable one.

Similarity overlay geometry
---------------------------
The patch scores cos/τ on the g × g patch grid are upsampled bilinearly (align_corners False, i.e. grid edges
on image edges) to an ``r × c`` grid (4 × the patch grid, at most the image size), then passed through the
sigmoid: the map is sigmoid(cos/τ) ∈ (0, 1), kind "similarity", one layer per query, named after the query.
Its affine is ``image_affine @ map_to_image_matrix((r, c), (H, W))`` — the pixel-centre formula of
:func:`engines.multires_cxr.engine.map_to_image_matrix` (map pixel centres at ``(u + ½)·W/c − ½``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import (
    CancelledFn,
    EngineError,
    EngineResult,
    Overlay,
    ProgressFn,
    ShippedWeightsEngine,
    _never,
    _no_progress,
    finite_or_raise,
)
from engines.multires_cxr.engine import map_to_image_matrix
from viewer.model.volume import Volume

ENGINE_ID = "radzero"
MIN_SIDE = 32
UPSAMPLE = 4
LEGEND = "sigmoid(cos/τ): patch–text similarity (VL-CABS)"
UNITS = "similarity probability"


def image_key(array: np.ndarray) -> str:
    """Cache key of an image: BLAKE2b-128 of its bytes, shape and dtype."""
    a = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(a.view(np.uint8).reshape(-1).data)
    return h.hexdigest()


class RadZeroEngine(ShippedWeightsEngine):
    """Similarity heatmap of a typed finding on a chest radiograph + its zero-shot probability (RadZero).

    Args:
        weights: a ``.safetensors`` file (default: the shipped demo weights, hash-checked against the card).
            User files load with ``strict=True``; a file without config metadata is taken as the paper config.
        cache_size: images whose tokens are kept (least recently used dropped first).
    """

    id: ClassVar[str] = ENGINE_ID
    title: ClassVar[str] = "RadZero (free-text grounding)"
    paper: ClassVar[str] = ("Park J, et al. RadZero: Similarity-Based Cross-Attention for Explainable Vision-Language "
                            "Alignment in Radiology with Zero-Shot Multi-Task Capability. arXiv:2504.07416, 2025.")
    modalities: ClassVar[tuple[str, ...]] = ("CR", "DX", "OT")
    dims: ClassVar[tuple[int, ...]] = (2,)
    takes_query: ClassVar[bool] = True
    outputs = ("similarity", "scores")

    def __init__(self, weights: str | Path | None = None, cache_size: int = 4) -> None:
        super().__init__(weights)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.stats = {"image_cache_hits": 0, "image_cache_misses": 0}

    # ---- weights -----------------------------------------------------------------------------------
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.radzero.weights_io import load_model

        return load_model(path, expected_sha256)

    # ---- run ---------------------------------------------------------------------------------------
    def preprocess(self, volume: Volume) -> np.ndarray:
        """Check ``volume`` and return grey float32 ``[H, W]`` in [0, 1] (percentile-normalised)."""
        self.check_input(volume)
        from engines.multires_cxr.data import normalise, to_grey

        grey = to_grey(volume.array, volume.rgb)
        if grey.ndim != 2:
            raise EngineError(f"{self.title} takes one 2D radiograph; this array has shape {volume.array.shape}.")
        finite_or_raise(grey)
        if min(grey.shape) < MIN_SIDE:
            raise EngineError(f"The image is too small ({grey.shape[1]}×{grey.shape[0]} px); "
                              f"{self.title} needs at least {MIN_SIDE} px per side.")
        try:
            return normalise(grey)
        except ValueError as exc:
            raise EngineError(f"The image is constant (no contrast); nothing to ground ({exc}).") from exc

    def image_tokens(self, volume: Volume, device: str = "cpu", cancelled: CancelledFn = _never) -> tuple[Any, bool]:
        """Head-ready tokens ``[1, 1 + g·g, D]`` (CPU) of ``volume``, from the cache when possible.

        Returns:
            ``(tokens, cache_hit)``.
        """
        model = self.load()
        key = f"{id(model)}:{image_key(volume.array)}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["image_cache_hits"] += 1
                return self._cache[key], True
        image = self.preprocess(volume)
        self.check_cancelled(cancelled)
        import torch

        from engines.device import pick_device, run_with_oom_fallback
        from engines.multires_cxr.data import resize_square
        from engines.radzero.model import to_input

        s = model.config.image_size
        x = to_input(torch.from_numpy(resize_square(image, s))[None], model.config)

        def fwd(dev: Any) -> Any:
            with torch.inference_mode():
                out = model.to(dev).encode_image(x.to(dev)).float().cpu()
            model.to("cpu")
            return out

        tokens = run_with_oom_fallback(fwd, pick_device(device))
        with self._lock:
            self._cache[key] = tokens
            self.stats["image_cache_misses"] += 1
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return tokens, False

    def text_embeddings(self, sentences: list[str]) -> np.ndarray:
        """Sentence-encoder embeddings ``[T, 384]`` (cached per sentence; the encoder loads once, lazily)."""
        from engines.radzero.text import encode

        todo = [s for s in dict.fromkeys(sentences) if s not in self._text_cache]
        if todo:
            for s, e in zip(todo, encode(todo), strict=True):
                self._text_cache[s] = e
            while len(self._text_cache) > 256:
                self._text_cache.popitem(last=False)
        return np.stack([self._text_cache[s] for s in sentences])

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Similarity overlay for ``query`` (or, without one, for the most probable default class) + scores."""
        progress(0.0, "checking the image")
        self.check_input(volume)
        if query is not None and not query.strip():
            query = None
        self.check_cancelled(cancelled)
        progress(0.05, "loading weights")
        model = self.load()
        self.check_cancelled(cancelled)
        progress(0.1, "loading the sentence encoder")
        from engines.radzero.text import load_text_encoder, negation, prompt, query_prompt

        load_text_encoder()
        self.check_cancelled(cancelled)
        progress(0.2, "encoding the image (cached per image)")
        tokens, hit = self.image_tokens(volume, device, cancelled)
        self.check_cancelled(cancelled)
        progress(0.7, "encoding the text")
        if query is None:
            from engines.radzero.prepare import CLASS_NAMES, class_phrase

            names = list(CLASS_NAMES)
            pos = [prompt(class_phrase(c)) for c in names]
            neg: list[str | None] = [negation(class_phrase(c)) for c in names]
        else:
            p, n = query_prompt(query)
            names, pos, neg = [query.strip()], [p], [n]
        sentences = pos + [n for n in neg if n]
        emb = self.text_embeddings(sentences)
        self.check_cancelled(cancelled)
        progress(0.85, "VL-CABS head")
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            t = model.encode_text(torch.from_numpy(emb))
            logits, score = model.head(tokens, t)
        logits = logits[0].numpy().astype(np.float64)
        from engines.radzero.metrics import zero_shot_prob

        scores: dict[str, float] = {}
        k = len(pos)
        neg_index = {i: k + j for j, i in enumerate(i for i, n in enumerate(neg) if n)}
        for i, name in enumerate(names):
            if i in neg_index:
                scores[name] = float(zero_shot_prob(logits[i], logits[neg_index[i]]))
        best = max(range(k), key=lambda i: scores.get(names[i], 0.0)) if query is None else 0
        self.check_cancelled(cancelled)
        h, w = volume.shape3d[1:]
        g = model.config.grid
        rows, cols = min(h, UPSAMPLE * g), min(w, UPSAMPLE * g)
        with torch.inference_mode():
            up = F.interpolate(score[0, best].reshape(1, 1, g, g), size=(rows, cols), mode="bilinear",
                               align_corners=False)
            sim = torch.sigmoid(up)[0, 0].numpy().astype(np.float32)
        affine = volume.affine @ map_to_image_matrix((rows, cols), (h, w))
        label = names[best]
        ov = Volume(sim, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                    metadata={"query": label, "prompt": pos[best], "negation": neg[best], "source": self.id,
                              "patch_grid": (g, g), "image_text_logit": float(logits[best]),
                              "probability": scores.get(label), "tau": float(model.head_params.tau.detach())})
        overlay = Overlay(name=f"similarity · {label}", kind="similarity", volume=ov, value_range=(0.0, 1.0),
                          colormap="inferno", legend=f"“{label}”: {LEGEND}", units=UNITS)
        notes = [f"Prompt: “{pos[best]}”" + (f" vs “{neg[best]}”" if neg[best] else " (no negation: no probability)"),
                 "image features " + ("from the cache" if hit else "computed and cached"),
                 "Research demo weights, not for clinical use; trained on 145 radiographs of a COVID-19 collection."]
        progress(1.0, "done")
        return EngineResult(overlays=[overlay], scores=scores, notes=notes)


__all__ = ["RadZeroEngine", "image_key"]
