"""Lucent engine: HLIP — 3D study-level language–image model (zero-shot class scores + 3D similarity heatmap).

Qt-free; torch and the sentence encoder are imported lazily inside :meth:`HLIPEngine.run`.

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
(:func:`token_to_voxel_matrix`). In depth the nearest-exact resampling makes this exact up to ±½ input slice.

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

from engines.base import (
    WEIGHTS_ROOT,
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
from engines.hlip import reports
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "hlip"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "cosine(patch token, text) — HLIP similarity"
REFERENCE_CLASS = "No significant abnormalities"
CONTRAST_LEGEND = "cos(patch, query) − cos(patch, “no significant abnormalities”) — HLIP similarity contrast"
MIN_SLICES = 2
MIN_SIDE = 16


def token_to_voxel_matrix(grid: tuple[int, int, int], scan_shape: tuple[int, int, int]) -> np.ndarray:
    """4×4 matrix taking a token index (u, v, w, 1) = (column, row, slice) to the input voxel index (i, j, k, 1).

    Args:
        grid: token grid ``(D', H', W')``.
        scan_shape: input scan ``(K, J, I)``.
    """
    m = np.eye(4)
    for ax, (n_tok, n_vox) in enumerate(zip(grid[::-1], scan_shape[::-1], strict=True)):  # i, j, k
        s = n_vox / n_tok
        m[ax, ax] = s
        m[ax, 3] = 0.5 * s - 0.5
    return m


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
        self.last_timing: dict[str, float] = {}

    # ---- weights -----------------------------------------------------------------------------------
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.hlip.weights_io import load_model

        model = load_model(path, expected_sha256=expected_sha256)
        if model.config.text != "minilm":
            raise EngineError(f"{path.name} has a BERT text tower ({model.config.name}); Lucent ships no "
                              "BiomedBERT tokenizer offline, so only demo-style (MiniLM) weights run in the app.")
        return model

    # ---- input -------------------------------------------------------------------------------------
    def preprocess(self, volume: Volume, size: tuple[int, int, int]) -> np.ndarray:
        """Check one scan and return the network input ``[D, H, W]`` float32 (normalised)."""
        self.check_input(volume)
        if volume.rgb:
            raise EngineError(f"{self.title} takes grey-level volumes; this one is colour.")
        a = volume.data3d
        finite_or_raise(a)
        k, j, i = a.shape
        if k < MIN_SLICES or min(j, i) < MIN_SIDE:
            raise EngineError(f"The volume is too small ({i}×{j}×{k}); {self.title} needs at least "
                              f"{MIN_SIDE}×{MIN_SIDE}×{MIN_SLICES} voxels.")
        from engines.hlip.preprocess import network_input, resize_scan, to_uint8, to_unit

        try:
            unit = to_unit(a, volume.modality)
        except ValueError as exc:
            raise EngineError(f"The volume is constant (no contrast); nothing to analyse ({exc}).") from exc
        return network_input(to_uint8(resize_scan(unit, size)))

    # ---- text --------------------------------------------------------------------------------------
    def text_embeddings(self, prompts: Sequence[str]) -> Any:
        """Prompts → normalised joint-space embeddings ``[T, E]`` (MiniLM once per prompt, cached)."""
        import torch

        model = self.load()
        todo = [p for p in prompts if p not in self._text_cache]
        if todo:
            from engines.radzero.text import encode

            try:
                vecs = encode(list(todo))
            except EngineError as exc:
                raise EngineError(f"HLIP's text side needs the sentence encoder: {exc}") from exc
            with torch.inference_mode():
                z = model.encode_text(torch.from_numpy(vecs).float())
            for p, e in zip(todo, z, strict=True):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    # ---- image -------------------------------------------------------------------------------------
    def image_features(self, volumes: Sequence[Volume], device: str = "cpu", progress: ProgressFn = _no_progress,
                       cancelled: CancelledFn = _never) -> ImageFeatures:
        """The (cached) image side of a study of one or more co-registered scans."""
        import time

        import torch

        model = self.load()
        key = "|".join(volume_key(v) for v in volumes) + f"|{self.weights.resolve()}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        cfg = model.config
        t0 = time.perf_counter()
        xs = []
        for s, v in enumerate(volumes):
            self.check_cancelled(cancelled)
            progress(0.05 + 0.1 * s / len(volumes), f"preparing scan {s + 1}/{len(volumes)}")
            xs.append(self.preprocess(v, cfg.input_size))
        x = torch.from_numpy(np.stack(xs))[None, :, None]  # [1, N, 1, D, H, W]
        n_blocks = cfg.depth

        def on_scan(s: int) -> None:
            self.check_cancelled(cancelled)
            progress(0.15 + 0.05 * (s + 1) / len(volumes), f"patch embedding, scan {s + 1}/{len(volumes)}")

        def on_block(i: int, level: str) -> None:
            self.check_cancelled(cancelled)
            progress(0.2 + 0.65 * (i + 1) / n_blocks, f"block {i + 1}/{n_blocks} ({level} attention)")

        def forward(dev: Any) -> tuple[Any, Any]:
            with torch.inference_mode():
                m = model.to(dev)
                trunk = m.visual.trunk
                prefix, patches = trunk.run_blocks(trunk.embed(x.to(dev), on_scan), on_block)
                img, dense = m.visual.project(prefix, patches)
                img = torch.nn.functional.normalize(img, dim=-1)[0].float().cpu()
                dense = torch.nn.functional.normalize(dense, dim=-1)[0].float().cpu()
            model.to("cpu")
            return img, dense

        dev = torch.device(device if device == "cpu" or torch.cuda.is_available() else "cpu")
        try:
            img, dense = forward(dev)
        except torch.OutOfMemoryError:
            model.to("cpu")
            img, dense = forward(torch.device("cpu"))
        feats = ImageFeatures(img, dense, tuple(int(g) for g in dense.shape[1:4]), time.perf_counter() - t0)
        with self._lock:
            self._cache[key] = feats
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

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """The open volume as a one-scan study (see :meth:`run_study`)."""
        return self.run_study([volume], query, device, progress, cancelled)

    def run_study(self, volumes: Sequence[Volume], query: str | None = None, device: str = "cpu",
                  progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Class scores for the default prompts (+ P(query)) and one similarity overlay per scan.

        Args:
            volumes: the scans of one study (same patient, e.g. FLAIR and T1c); the first one's modality
                picks the prompt template.
            query: free text from the query bar, or None (then the heatmap is for the top default class).
        """
        import time

        import torch

        if not volumes:
            raise EngineError("HLIP needs at least one scan.")
        progress(0.0, "checking the study")
        for v in volumes:
            self.check_input(v)
            finite_or_raise(v.array)
        self.check_cancelled(cancelled)
        progress(0.02, "loading weights")
        model = self.load()
        self.check_cancelled(cancelled)
        t0 = time.perf_counter()
        cached = len(self._cache)
        feats = self.image_features(volumes, device, progress, cancelled)
        t_img = time.perf_counter() - t0
        self.check_cancelled(cancelled)
        progress(0.9, "text side")
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
        self.check_cancelled(cancelled)
        progress(0.95, "building the heatmap")
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
        self.last_timing = {"image_s": t_img, "text_s": time.perf_counter() - t1,
                            "image_cached": float(len(self._cache) == cached and t_img < feats.seconds)}
        notes.append("Research demo weights, not for clinical use; trained on 4 BRATS patients and 110 head-CT "
                     "slices with rule-generated report texts.")
        progress(1.0, "done")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)


__all__ = ["HLIPEngine", "token_to_voxel_matrix", "volume_key"]
