"""Lucent engine: RadZero free-text grounding — type a finding, see where the model grounds it.

Qt-free; torch and the text side are imported lazily inside the run steps (which the app calls in a worker
thread), so importing this module and the registry stays cheap.

Per run: the radiograph is checked, normalised (0.5/99.5 percentiles, as multires_cxr) and squashed to the
config's S × S; its head-ready tokens are **cached per image** (key: a BLAKE2 hash of the array bytes, shape
and dtype, plus the loaded weights), so each further query costs only text encoding + the VL-CABS head. The
query becomes the prompt "There is {query}." (a typed sentence is kept as typed), its negation "There is no
{query}." gives the zero-shot probability softmax(logit_pos, logit_neg); without a query the engine scores
every class of :data:`engines.radzero.prepare.CLASS_NAMES` and maps the most probable one.

Similarity overlay geometry and scale
-------------------------------------
The token scores cos/τ on the g × g token grid (28 × 28 with the demo's local stem, 16 × 16 ViT patches
otherwise) are upsampled bilinearly (align_corners False, i.e. grid edges on image edges) to an ``r × c`` grid
(4 × the token grid, at most the image size), then passed through the sigmoid: the map is sigmoid(cos/τ) on the
fixed 0–1 scale (never rescaled per image), kind "similarity", one layer per query, named after the query. It is
**gated to the lung fields** (:func:`engines.radzero.gate.lung_gate`: the lung-field U-Net when shipped, else the
average training lung mask): 0 outside them, so the background is never lit. The overlay's ``threshold`` (values
below it transparent) is the display/Dice threshold chosen on training lung masks.

Calibration
-----------
The zero-shot probability is softmax(logit_pos / T, logit_neg / T) with the temperature T fitted on the
validation split (``calibration.json`` beside the weights, written by ``python -m engines.radzero.evaluate
--store-calibration``; used only when its SHA-256 matches the loaded file, else T = 1). Without a query the
engine scores the classes the data supports (``scored_classes`` of that file; all of
:data:`engines.radzero.prepare.CLASS_NAMES` when absent).
Its affine is ``image_affine @ map_to_image_matrix((r, c), (H, W))`` — the pixel-centre formula of
:func:`engines.common.geometry.map_to_image_matrix` (map pixel centres at ``(u + ½)·W/c − ½``).

Text side
---------
The demo weights read frozen all-MiniLM-L6-v2 sentence vectors (384-d, :mod:`engines.common.text`) through their
trained ``text_projector``. A converted official checkpoint (paper config) carries the authors' MPNet text tower
(768-d, mean-pooled): its prompts are tokenized with the all-mpnet-base-v2 vocabulary found beside the weights
(``<name>.vocab.txt`` or ``vocab.txt``); without it, or with any other text width the offline encoder cannot
feed, the engine refuses to load with a message naming the file.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import RunState, ShippedWeightsEngine, Step
from engines.common.geometry import map_to_image_matrix
from engines.common.image import radiograph01, resize_square
from engines.errors import EngineError
from engines.result import EngineResult, Overlay
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
        self._tokenizer: Any = None
        self.calibration: dict[str, Any] = {}
        self.stats = {"image_cache_hits": 0, "image_cache_misses": 0}

    # ---- weights and text side ------------------------------------------------------------------------
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        """The model, strictly loaded; its text side checked (see the module docstring)."""
        from engines.radzero.weights_io import load_model

        model = load_model(path, expected_sha256)
        self._tokenizer = self.text_side(path, model.config)
        self.calibration = self.calibration_of(path)
        return model

    @staticmethod
    def calibration_of(path: Path) -> dict[str, Any]:
        """``calibration.json`` beside ``path`` when it was fitted for this very file (SHA-256), else the display
        threshold from the weights' metadata and T = 1."""
        from engines.common.calibration import read_fitted
        from engines.radzero.weights_io import threshold_of

        fitted = read_fitted(path)
        if fitted is not None:
            return fitted
        thr = threshold_of(path)
        return {"score_temperature": 1.0, "map_threshold": thr[0] if thr else None}

    @staticmethod
    def text_side(path: Path, cfg: Any) -> Any:
        """The tokenizer of a built-in text tower (MPNet), or None for external sentence vectors.

        Raises:
            EngineError: MPNet weights without their vocabulary, or external vectors of a width that the
                offline sentence encoder (384-d) cannot feed.
        """
        from engines.common.text import TEXT_DIM, TEXT_ENCODER_NAME, tokenizer_for

        if cfg.text_model == "mpnet":
            return tokenizer_for(path, "mpnet", cfg.mpnet["positions"] - 2, cfg.mpnet["vocab"],
                                 f"MPNet, {cfg.hidden}-d, all-mpnet-base-v2")
        if cfg.text_dim != TEXT_DIM or not (cfg.text_projection or cfg.hidden == TEXT_DIM):
            raise EngineError(f"{path.name} expects {cfg.text_dim}-d sentence vectors (config '{cfg.name}', "
                              f"text_model '{cfg.text_model}'), but the offline sentence encoder "
                              f"{TEXT_ENCODER_NAME} gives {TEXT_DIM}-d ones; this checkpoint cannot run in Lucent.")
        return None

    def text_embeddings(self, sentences: list[str]) -> Any:
        """Head-ready text embeddings ``[T, D]`` (the sentence vectors or token ids are cached per sentence)."""
        import torch

        model = self.load()
        if self._tokenizer is not None:
            ids, mask = self._tokenizer(sentences)
            with torch.inference_mode():
                return model.encode_text(ids, mask)
        from engines.common.text import encode

        todo = [s for s in dict.fromkeys(sentences) if s not in self._text_cache]
        if todo:
            for s, e in zip(todo, encode(todo), strict=True):
                self._text_cache[s] = e
            while len(self._text_cache) > 256:
                self._text_cache.popitem(last=False)
        with torch.inference_mode():
            return model.encode_text(torch.from_numpy(np.stack([self._text_cache[s] for s in sentences])))

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def preprocess(self, state: RunState) -> dict[str, Any]:
        """The prompts, and the image input unless its tokens are cached (key: image bytes + weights)."""
        from engines.radzero.text import negation, prompt, query_prompt

        if self._tokenizer is None:
            from engines.common.text import load_text_encoder

            load_text_encoder()  # fail early, before the image work, when the encoder is missing
        if state.query is None:
            from engines.radzero.prepare import CLASS_NAMES, class_phrase

            names = list(self.calibration.get("scored_classes") or CLASS_NAMES)
            pos = [prompt(class_phrase(c)) for c in names]
            neg: list[str | None] = [negation(class_phrase(c)) for c in names]
        else:
            p, n = query_prompt(state.query)
            names, pos, neg = [state.query], [p], [n]
        inputs: dict[str, Any] = {"names": names, "pos": pos, "neg": neg,
                                  "key": f"{id(state.model)}:{image_key(state.volume.array)}"}
        with self._lock:
            cached = self._cache.get(inputs["key"])
            if cached is not None:
                self._cache.move_to_end(inputs["key"])
        if cached is None:
            import torch

            from engines.radzero.model import to_input

            s = state.model.config.image_size
            v = state.volume
            grey = radiograph01(v.array, v.rgb, self.title, MIN_SIDE, "ground")
            inputs["grey"] = grey
            inputs["x"] = to_input(torch.from_numpy(resize_square(grey, s))[None], state.model.config)
        inputs["tokens"] = cached
        return inputs

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[Any, bool]:
        """(Head-ready image tokens ``[1, 1 + g·g, D]`` on the CPU, the lung gate ``[H, W]`` bool and its source),
        from the cache when possible; and whether it was a cache hit."""
        import torch

        from engines.radzero.gate import lung_gate

        inp = state.inputs
        with self._lock:
            if inp["tokens"] is not None:
                self.stats["image_cache_hits"] += 1
                return inp["tokens"], True
        step(0.0, "encoding the image (cached per image)")
        with torch.inference_mode():
            tokens = state.model.to(device).encode_image(inp["x"].to(device)).float().cpu()
        step(0.5, "finding the lung fields")
        entry = (tokens, *lung_gate(inp["grey"]))
        with self._lock:
            self._cache[inp["key"]] = entry
            self.stats["image_cache_misses"] += 1
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry, False

    def postprocess(self, state: RunState) -> EngineResult:
        """Text side + VL-CABS head: the similarity overlay of the query (or the top default class) + scores."""
        import torch
        import torch.nn.functional as F

        from engines.radzero.gate import gate_map
        from engines.radzero.metrics import zero_shot_prob

        model, volume = state.model, state.volume
        names, pos, neg = state.inputs["names"], state.inputs["pos"], state.inputs["neg"]
        (tokens, gate, gate_source), hit = state.outputs
        t = self.text_embeddings(pos + [n for n in neg if n])
        with torch.inference_mode():
            logits, score = model.head(tokens, t)
        temperature = float(self.calibration.get("score_temperature") or 1.0)
        logits = logits[0].numpy().astype(np.float64) / temperature
        scores: dict[str, float] = {}
        k = len(pos)
        neg_index = {i: k + j for j, i in enumerate(i for i, n in enumerate(neg) if n)}
        for i, name in enumerate(names):
            if i in neg_index:
                scores[name] = float(zero_shot_prob(logits[i], logits[neg_index[i]]))
        best = max(range(k), key=lambda i: scores.get(names[i], 0.0)) if state.query is None else 0
        h, w = volume.shape3d[1:]
        g = model.config.grid
        rows, cols = min(h, UPSAMPLE * g), min(w, UPSAMPLE * g)
        with torch.inference_mode():
            up = F.interpolate(score[0, best].reshape(1, 1, g, g), size=(rows, cols), mode="bilinear",
                               align_corners=False)
            sim = gate_map(torch.sigmoid(up)[0, 0].numpy().astype(np.float32), gate)
        affine = volume.affine @ map_to_image_matrix((rows, cols), (h, w))
        label = names[best]
        ov = Volume(sim, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                    metadata={"query": label, "prompt": pos[best], "negation": neg[best], "source": self.id,
                              "patch_grid": (g, g), "image_text_logit": float(logits[best]),
                              "probability": scores.get(label), "tau": float(model.head_params.tau.detach()),
                              "score_temperature": temperature, "gate": gate_source})
        thr = self.calibration.get("map_threshold")
        overlay = Overlay(name=f"similarity · {label}", kind="similarity", volume=ov, value_range=(0.0, 1.0),
                          colormap="inferno", legend=f"“{label}”: {LEGEND}, inside the lung fields", units=UNITS,
                          threshold=float(thr) if thr else None)
        notes = [f"Prompt: “{pos[best]}”" + (f" vs “{neg[best]}”" if neg[best] else " (no negation: no probability)"),
                 "image features " + ("from the cache" if hit else "computed and cached"),
                 f"Map shown inside the lung fields only ({gate_source}); scores calibrated with T = "
                 f"{temperature:.3g} fitted on validation.",
                 "Research demo weights, not for clinical use; trained on 145 radiographs of a COVID-19 collection."]
        return EngineResult(overlays=[overlay], scores=scores, notes=notes)


ENGINE_CLASS = RadZeroEngine  # found by engines.registry

__all__ = ["RadZeroEngine", "image_key"]
