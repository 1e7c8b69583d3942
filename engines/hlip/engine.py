"""Lucent engine: HLIP — 3D study-level language–image model (zero-shot class scores + 3D similarity heatmap).

Qt-free; torch and the text side are imported lazily inside the run steps.

What it does for an open 3D study (MR / CT / OT volume, or several co-registered scans via :meth:`run_study`):

* **class scores** — prompts ``"This MRI study shows: {c}."`` (CT: ``"This CT study shows: {c}."``; an "OT"
  volume, e.g. NIfTI, gets the CT form when its values look like HU, else the MRI form) for the default classes (:data:`reports.DEFAULT_CLASSES`: glioma,
  intracranial hemorrhage, acute stroke, no significant abnormalities); class score = cosine(image, prompt) ×
  exp(logit_scale), softmax over the classes (they sum to 1). With a query: also ``P(query)`` from the 2-way
  softmax of the query prompt against its negation ("no {query}").
* **similarity heatmap** — cosine between each patch token (after the study-level blocks and the final norm,
  through the patch part of the head) and the text embedding of the query (or of the top class when no query
  is given): one overlay per scan, kind ``"similarity"``, on the coarse token grid. By default
  (``heatmap="contrast"``) the map is that cosine **minus** the cosine with the reference prompt
  "… shows: No significant abnormalities." — the 2-way "X vs normal" protocol applied per token. Reason, measured
  on the *training* patients' masks only: the raw cosine of the demo weights is highest on background tokens
  (token AUC tumour-vs-none ≈ 0.08) while the contrast map points at tumour (≈ 0.78); ``heatmap="cosine"`` gives
  the raw map. Both are reported on the held-out patient by ``evaluate``.

Heatmap geometry
----------------
Each scan ``[K, J, I]`` (slices, rows, columns) is resized to the model's ``D × H × W`` (in-plane bilinear,
depth nearest-exact; no crop) and cut into patches of ``pd × ph × pw``, so the token grid is
``D' × H' × W'`` with ``D' = D/pd`` etc. Token ``(u, v, w)`` (column, row, slice index on that grid) covers
``s_i = I/W'`` columns, ``s_j = J/H'`` rows and ``s_k = K/D'`` slices of the input, and its centre is at input
voxel index::

    i = (u + ½)·s_i − ½,   j = (v + ½)·s_j − ½,   k = (w + ½)·s_k − ½

(voxel centres at integers, grid edges aligned). The overlay affine is therefore
``volume.affine @ M`` with ``M = [[s_i,0,0,(s_i−1)/2],[0,s_j,0,(s_j−1)/2],[0,0,s_k,(s_k−1)/2],[0,0,0,1]]``
(:func:`engines.common.geometry.token_to_voxel_matrix`). In depth the nearest-exact resampling makes this exact up to ±½ input slice.

Caching: the image side (patch features + image embedding) is cached per volume (BLAKE2 of the array bytes,
shape, dtype and affine, plus the weights file), so a second query on the same study costs only the text side.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step, finite_or_raise
from engines.common.geometry import token_to_voxel_matrix
from engines.errors import EngineError
from engines.hlip import reports
from engines.hlip.reports import REFERENCE_CLASS
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "hlip"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "cosine(patch token, text) — HLIP similarity"
CONTRAST_LEGEND = "cos(patch, query) − cos(patch, “no significant abnormalities”) — HLIP similarity contrast"
MIN_SLICES = 2
MIN_SIDE = 16


def volume_key(volume: Volume) -> str:
    """Cache key of a volume: BLAKE2 of its bytes + shape + dtype + affine."""
    a = np.ascontiguousarray(volume.array)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((a.shape, a.dtype.str, volume.modality)).encode())
    h.update(np.asarray(volume.affine, dtype=np.float64).tobytes())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@dataclass
class ImageFeatures:
    """Cached image side of one study: embedding ``[E]``, patch features ``[N, D', H', W', E]`` (normalised)."""

    image: Any
    dense: Any
    grid: tuple[int, int, int]
    seconds: float


class HLIPEngine(ShippedWeightsEngine):
    """HLIP zero-shot class scores + query heatmap on 3D studies (Zhao et al., arXiv 2505.21862).

    Args:
        weights: ``.safetensors`` (default: the shipped demo weights); the config comes from the file's metadata;
            loaded with ``strict=True``.
        cache_size: studies whose image features are kept (least recently used dropped first).
    """

    id: ClassVar[str] = "hlip"
    title: ClassVar[str] = "HLIP (3D study zero-shot + query)"
    paper: ClassVar[str] = ("Zhao C, et al. Towards Scalable Language-Image Pre-training for 3D Medical Imaging "
                            "(HLIP: hierarchical attention). arXiv:2505.21862, TMLR 2026.")
    modalities: ClassVar[tuple[str, ...]] = ("MR", "CT", "OT")
    dims: ClassVar[tuple[int, ...]] = (3,)
    takes_query: ClassVar[bool] = True
    multi_scan: ClassVar[bool] = True
    outputs = ("scores", "similarity")
    classes: ClassVar[tuple[str, ...]] = reports.DEFAULT_CLASSES

    def __init__(self, weights: str | Path | None = None, cache_size: int = 4, heatmap: str = "contrast") -> None:
        if heatmap not in ("contrast", "cosine"):
            raise ValueError(f"heatmap must be 'contrast' or 'cosine', not {heatmap!r}")
        super().__init__(weights)
        self.heatmap = heatmap
        self.cache_size = cache_size
        self._cache: OrderedDict[str, ImageFeatures] = OrderedDict()
        self._text_cache: dict[str, Any] = {}
        self._tokenizer: Any = None
        self.last_timing: dict[str, float] = {}

    # ---- weights and text side ------------------------------------------------------------------------
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        """The model, strictly loaded; a BERT text tower gets its tokenizer from the vocabulary beside the file."""
        from engines.hlip.weights_io import load_model

        model = load_model(path, expected_sha256=expected_sha256)
        self._tokenizer = None
        if model.config.text == "bert":
            from engines.common.text import tokenizer_for

            cfg = model.config
            self._tokenizer = tokenizer_for(path, "bert", cfg.text_context, cfg.bert_vocab,
                                            f"BERT, {cfg.text_width}-d ({cfg.name})")
        return model

    def text_embeddings(self, prompts: Sequence[str]) -> Any:
        """Prompts → normalised joint-space embeddings ``[T, E]`` (cached per prompt)."""
        import torch

        model = self.load()
        todo = [p for p in prompts if p not in self._text_cache]
        if todo:
            if self._tokenizer is not None:
                text = self._tokenizer(todo)[0]  # BERT's own mask is ids != 0
            else:
                from engines.common.text import encode

                try:
                    text = torch.from_numpy(encode(list(todo))).float()
                except EngineError as exc:
                    raise EngineError(f"HLIP's text side needs the sentence encoder: {exc}") from exc
            with torch.inference_mode():
                z = model.encode_text(text)
            for p, e in zip(todo, z, strict=True):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def check_input(self, volume: Volume) -> None:
        """Base checks plus: grey, finite, at least MIN_SIDE² × MIN_SLICES voxels."""
        super().check_input(volume)
        if volume.rgb:
            raise EngineError(f"{self.title} takes grey-level volumes; this one is colour.")
        finite_or_raise(volume.array)
        k, j, i = volume.shape3d
        if k < MIN_SLICES or min(j, i) < MIN_SIDE:
            raise EngineError(f"The volume is too small ({i}×{j}×{k}); {self.title} needs at least "
                              f"{MIN_SIDE}×{MIN_SIDE}×{MIN_SLICES} voxels.")

    def scan_input(self, volume: Volume, size: tuple[int, int, int]) -> np.ndarray:
        """One checked scan → the network input ``[D, H, W]`` float32 (normalised)."""
        from engines.hlip.preprocess import network_input, resize_scan, to_uint8, to_unit

        try:
            unit = to_unit(volume.data3d, volume.modality)
        except ValueError as exc:
            raise EngineError(f"The volume is constant (no contrast); nothing to analyse ({exc}).") from exc
        return network_input(to_uint8(resize_scan(unit, size)))

    def preprocess(self, state: RunState) -> dict[str, Any]:
        """The study input ``[1, N, 1, D, H, W]``, unless its image features are cached (key: arrays + weights)."""
        import time

        import torch

        t0 = time.perf_counter()
        key = "|".join(volume_key(v) for v in state.volumes) + f"|{self.weights.resolve()}"
        with self._lock:
            feats = self._cache.get(key)
            if feats is not None:
                self._cache.move_to_end(key)
                return {"key": key, "feats": feats, "t0": t0}
        size = state.model.config.input_size
        x = torch.from_numpy(np.stack([self.scan_input(v, size) for v in state.volumes]))[None, :, None]
        return {"key": key, "feats": None, "x": x, "t0": t0}

    def forward(self, state: RunState, device: Any, step: Step) -> ImageFeatures:
        """The image side of the study (normalised embedding and patch features), block by block."""
        import time

        import torch

        inp = state.inputs
        if inp["feats"] is not None:
            return inp["feats"]
        model, n_scans, n_blocks = state.model.to(device), inp["x"].shape[1], state.model.config.depth

        def on_scan(s: int) -> None:
            step(0.05 * (s + 1) / n_scans, f"patch embedding, scan {s + 1}/{n_scans}")

        def on_block(i: int, level: str) -> None:
            step(0.05 + 0.95 * (i + 1) / n_blocks, f"block {i + 1}/{n_blocks} ({level} attention)")

        with torch.inference_mode():
            trunk = model.visual.trunk
            prefix, patches = trunk.run_blocks(trunk.embed(inp["x"].to(device), on_scan), on_block)
            img, dense = model.visual.project(prefix, patches)
            img = torch.nn.functional.normalize(img, dim=-1)[0].float().cpu()
            dense = torch.nn.functional.normalize(dense, dim=-1)[0].float().cpu()
        feats = ImageFeatures(img, dense, tuple(int(g) for g in dense.shape[1:4]), time.perf_counter() - inp["t0"])
        with self._lock:
            self._cache[inp["key"]] = feats
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return feats

    # ---- run ---------------------------------------------------------------------------------------
    @staticmethod
    def prompt_modality(volume: Volume) -> str:
        """"MR" or "CT" for the prompt template: the DICOM modality, or for "OT" (NIfTI, …) a guess from the
        values (CT when they span HU-like −500…500, else MR)."""
        if volume.modality in ("MR", "CT"):
            return volume.modality
        a = volume.array
        return "CT" if float(np.nanmin(a)) < -500 and float(np.nanmax(a)) > 500 else "MR"

    @staticmethod
    def query_prompt(query: str, modality: str) -> tuple[str, str]:
        """A typed query → (prompt, negated prompt). A full sentence ending in "." is kept as typed."""
        q = " ".join(query.split())
        if q.endswith(".") and " shows" in q.lower():
            body = q.split(":", 1)[-1].strip().rstrip(".") if ":" in q else q.rstrip(".")
            return q, reports.prompt(f"no {body}", modality)
        return reports.prompt(q, modality), reports.prompt(f"no {q.rstrip('.')}", modality)

    def postprocess(self, state: RunState) -> EngineResult:
        """Class scores for the default prompts (+ P(query)) and one similarity overlay per scan."""
        import time

        import torch

        model, volumes, query, feats = state.model, state.volumes, state.query, state.outputs
        t_img = time.perf_counter() - state.inputs["t0"]
        cached = state.inputs["feats"] is not None
        t1 = time.perf_counter()
        mod = self.prompt_modality(volumes[0])
        prompts = [reports.prompt(c, mod) for c in self.classes]
        scale = float(model.logit_scale.detach().clamp(max=float(np.log(100.0))).exp())
        t_cls = self.text_embeddings(prompts)
        cls_prob = torch.softmax(scale * t_cls @ feats.image, dim=0).numpy().astype(float)
        scores = {c: float(p) for c, p in zip(self.classes, cls_prob, strict=True)}
        notes = []
        if query and query.strip():
            pos, neg = self.query_prompt(query, mod)
            tq = self.text_embeddings([pos, neg])
            p2 = torch.softmax(scale * tq @ feats.image, dim=0).numpy()
            label = query.strip()
            scores[f"“{label}” vs “no {label}”"] = float(p2[0])
            target, target_name = tq[0], label
            notes.append(f"Query prompt: “{pos}” (2-way against “{neg}”).")
        else:
            top = int(np.argmax(cls_prob))
            target, target_name = t_cls[top], self.classes[top]
        legend, threshold = LEGEND, None
        if self.heatmap == "contrast" and target_name.strip().rstrip(".").lower() != REFERENCE_CLASS.lower():
            target = target - self.text_embeddings([reports.prompt(REFERENCE_CLASS, mod)])[0]
            legend, threshold = CONTRAST_LEGEND, 0.0  # shown only where the finding beats the normal report
        sim = torch.einsum("ndhwe,e->ndhw", feats.dense, target).numpy().astype(np.float32)
        if threshold is not None and not (sim > threshold).any():
            notes.append(f"“{target_name}” is nowhere more similar than “{REFERENCE_CLASS}”: "
                         "the map shows nothing.")
        overlays = []
        for s, v in enumerate(volumes):
            m = sim[s]
            affine = v.affine @ token_to_voxel_matrix(feats.grid, v.shape3d)
            lo, hi = float(m.min()) if threshold is None else threshold, float(m.max())
            ov = Volume(m, affine=affine, modality=v.modality, spacing_known=v.spacing_known,
                        metadata={"query": target_name, "source": self.id, "scan": s, "grid": list(feats.grid)})
            name = f"similarity · {target_name}" + (f" · scan {s + 1}" if len(volumes) > 1 else "")
            overlays.append(Overlay(name=name, kind="similarity", volume=ov, value_range=(lo, hi if hi > lo else lo + 1e-6),
                                    colormap="jet", legend=f"{legend}: “{target_name}”", units="cosine",
                                    threshold=threshold))
        self.last_timing = {"image_s": t_img, "text_s": time.perf_counter() - t1, "image_cached": float(cached)}
        notes.append("Research demo weights, not for clinical use; trained on 4 BRATS patients and 110 head-CT "
                     "slices with rule-generated report texts.")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)




ENGINE_CLASS = HLIPEngine  # found by engines.registry

__all__ = ["HLIPEngine", "token_to_voxel_matrix", "volume_key"]
