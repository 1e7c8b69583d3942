"""Lucent engine: HLIP — 3D study-level language–image model (zero-shot class scores + 3D similarity heatmap).

Qt-free; torch and the text side are imported lazily inside the run steps.

What it does for an open 3D study (MR / CT / OT volume, or several co-registered scans via :meth:`run_study`):

* **study-level scores first** — the calibrated 2-way score of the finding the weights were validated on
  (CT: "intracranial hemorrhage" vs "no intracranial hemorrhage"; MR: "glioma" vs "no glioma"), then the
  prompts ``"This MRI study shows: {c}."`` (CT: ``"This CT study shows: {c}."``; an "OT" volume gets the CT form
  when its values look like HU, a 2D slice the CT form unless it is MR) for the default classes
  (:data:`reports.DEFAULT_CLASSES`), softmax over them. Every softmax is ``softmax(exp(logit_scale) · cos / T)``
  with the temperature ``T`` fitted on the validation split for these weights (``calibration.json`` beside the
  weights, :mod:`engines.hlip.scoring`; identity with a note when absent). With a query: also ``P(query)`` against
  its negation ("no {query}").
* **heatmap** — per patch token the 2-way probability of the finding (the query, else the validated finding)
  against "… shows: No significant abnormalities.": ``σ(exp(logit_scale)·(cos(patch, finding) − cos(patch,
  normal))/T)`` — a probability on the fixed scale [0, 1], drawn above 0.5 (the finding beats the normal report),
  upsampled to the model's input grid and set to 0 outside the head/brain mask (:mod:`engines.hlip.anatomy`), so
  empty background is never lit. Without a typed query the map is **hidden by default** unless its localisation
  beat the baseline on validation (``calibration.json``: pointing game on held-out BRATS tumour studies vs the brain-mask centre); the
  result's notes say so.
* **2D slices** (a head-CT PNG, a single DICOM slice) are one-slice studies, read as ``prepare`` reads the head-CT
  training slices: grey = mean of the channels (a colour file only when its channels are nearly equal), 8-bit
  values / 255 (HU: brain window), centred square pad, 96×96, repeated to one patch depth → a 1×6×6 token grid;
  the map comes back on the slice's own pixel grid.

Heatmap geometry
----------------
Each 3D scan ``[K, J, I]`` (slices, rows, columns) is resized to the model's ``D × H × W`` (in-plane bilinear,
depth nearest-exact; no crop) and cut into patches of ``pd × ph × pw``, so the token grid is
``D' × H' × W'`` with ``D' = D/pd`` etc. Token ``(u, v, w)`` (column, row, slice index on that grid) covers
``s_i = I/W'`` columns, ``s_j = J/H'`` rows and ``s_k = K/D'`` slices of the input, and its centre is at input
voxel index::

    i = (u + ½)·s_i − ½,   j = (v + ½)·s_j − ½,   k = (w + ½)·s_k − ½

(voxel centres at integers, grid edges aligned). The overlay affine is therefore
``volume.affine @ M`` with ``M = [[s_i,0,0,(s_i−1)/2],[0,s_j,0,(s_j−1)/2],[0,0,s_k,(s_k−1)/2],[0,0,0,1]]``
(:func:`engines.common.geometry.token_to_voxel_matrix`). In depth the nearest-exact resampling makes this exact up to ±½ input slice.
The shown map is the token map upsampled (trilinear, grid edges aligned) to the model's ``D × H × W`` grid, whose
affine is ``volume.affine @ grid_to_input_matrix((D, H, W), (K, J, I))`` by the same rule.

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
from engines.common.geometry import grid_to_input_matrix, token_to_voxel_matrix
from engines.errors import EngineError
from engines.hlip import reports
from engines.hlip.reports import REFERENCE_CLASS
from engines.hlip.scoring import MAP_THRESHOLD, Calibration, family, token_probability
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "hlip"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "P(finding vs “no significant abnormalities”) per patch token — HLIP similarity"
MIN_SLICES = 2
MIN_SIDE = 16
GREY_SPREAD = 16  # a colour 2D image counts as grey when < 5 % of its pixels have channels further apart


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
    modalities: ClassVar[tuple[str, ...]] = ("MR", "CT", "OT", "XC")  # XC: only a grey-looking 2D slice
    dims: ClassVar[tuple[int, ...]] = (2, 3)  # 2D: a single slice read as a one-slice study
    takes_query: ClassVar[bool] = True
    multi_scan: ClassVar[bool] = True
    outputs = ("scores", "similarity")
    classes: ClassVar[tuple[str, ...]] = reports.DEFAULT_CLASSES

    def __init__(self, weights: str | Path | None = None, cache_size: int = 4) -> None:
        super().__init__(weights)
        self.calibration = Calibration()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, ImageFeatures] = OrderedDict()
        self._text_cache: dict[str, Any] = {}
        self._prompt_vectors: dict[str, np.ndarray] | None = None
        self._tokenizer: Any = None
        self.last_timing: dict[str, float] = {}

    # ---- weights and text side ------------------------------------------------------------------------
    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        """The model, strictly loaded; a BERT text tower gets its tokenizer from the vocabulary beside the file."""
        from engines.hlip.weights_io import load_model

        model = load_model(path, expected_sha256=expected_sha256)
        self.calibration = Calibration.for_weights(path, expected_sha256)
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
        if todo and self._tokenizer is None:  # MiniLM side: the fixed prompts' vectors ship beside the weights
            from engines.hlip.scoring import PROMPTS_FILE, load_prompt_vectors

            if self._prompt_vectors is None:  # frozen-encoder outputs: the same whatever the HLIP weights
                beside = self.weights.parent / PROMPTS_FILE
                self._prompt_vectors = load_prompt_vectors(beside if beside.exists() else WEIGHTS_DIR / PROMPTS_FILE)
            known = [p for p in todo if p in self._prompt_vectors]
            if known:
                with torch.inference_mode():
                    z = model.encode_text(torch.from_numpy(np.stack([self._prompt_vectors[p] for p in known])).float())
                self._text_cache.update(zip(known, z, strict=True))
                todo = [p for p in todo if p not in self._text_cache]
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
    @staticmethod
    def grey_looking(volume: Volume) -> bool:
        """Whether a colour 2D image is a grey slice saved as RGB (< 5 % of pixels with channels > 16 apart)."""
        a = np.asarray(volume.data3d[0, ::2, ::2], dtype=np.int16)
        return bool(((a.max(-1) - a.min(-1)) > GREY_SPREAD).mean() < 0.05)

    def applies_to(self, volume: Volume) -> bool:
        """Grey 3D studies and grey 2D slices (MR / CT / OT; a colour file only when it is grey-looking)."""
        if volume.rgb:
            return volume.is_2d and volume.modality in self.modalities and self.grey_looking(volume)
        return volume.modality != "XC" and super().applies_to(volume)

    def check_input(self, volume: Volume) -> None:
        """Base checks plus: grey (or a grey-looking 2D colour file), finite, at least MIN_SIDE² pixels and, in 3D,
        MIN_SLICES slices."""
        super().check_input(volume)
        if volume.rgb and not (volume.is_2d and self.grey_looking(volume)):
            raise EngineError(f"{self.title} takes grey-level images; this one is colour.")
        if volume.modality == "XC" and not volume.rgb:
            raise EngineError(f"{self.title} takes MR, CT or grey OT images; this one is a photograph (XC).")
        finite_or_raise(volume.array)
        k, j, i = volume.shape3d
        if min(j, i) < MIN_SIDE or (k > 1 and k < MIN_SLICES):
            raise EngineError(f"The image is too small ({i}×{j}×{k}); {self.title} needs at least "
                              f"{MIN_SIDE}×{MIN_SIDE} pixels.")

    @staticmethod
    def slice_unit(volume: Volume) -> np.ndarray:
        """A 2D slice → grey ``[J, I]`` float32 in [0, 1], as ``prepare`` reads the head-CT slices: colour → mean of
        the channels; 8-bit → /255; HU → brain window; anything else → foreground percentiles (see preprocess)."""
        from engines.hlip.preprocess import to_unit

        a = volume.data3d[0]
        if volume.rgb:
            a = np.asarray(a, dtype=np.float32).mean(-1)
        elif a.dtype == np.uint8:
            a = a.astype(np.float32)
        else:
            try:
                return to_unit(a[None], volume.modality)[0]
            except ValueError as exc:
                raise EngineError(f"The image is constant (no contrast); nothing to analyse ({exc}).") from exc
        if not float(a.max()) > float(a.min()):
            raise EngineError("The image is constant (no contrast); nothing to analyse.")
        return a / 255.0

    def scan_input(self, volume: Volume, size: tuple[int, int, int]) -> np.ndarray:
        """One checked 3D scan → the network input ``[D, H, W]`` float32 (normalised)."""
        from engines.hlip.preprocess import network_input, resize_scan, to_uint8, to_unit

        try:
            unit = to_unit(volume.data3d, volume.modality)
        except ValueError as exc:
            raise EngineError(f"The volume is constant (no contrast); nothing to analyse ({exc}).") from exc
        return network_input(to_uint8(resize_scan(unit, size)))

    def preprocess(self, state: RunState) -> dict[str, Any]:
        """The study input ``[1, N, 1, D, H, W]`` (a 2D slice: ``[1, 1, 1, pd, H, W]``, the slice repeated to one
        patch depth), unless its image features are cached (key: arrays + weights)."""
        import time

        import torch

        from engines.hlip.preprocess import network_input, slice_input

        t0 = time.perf_counter()
        if state.volumes[0].is_2d:
            state.volumes = state.volumes[:1]  # a 2D slice is a one-scan study
        key = "|".join(volume_key(v) for v in state.volumes) + f"|{self.weights.resolve()}"
        with self._lock:
            feats = self._cache.get(key)
            if feats is not None:
                self._cache.move_to_end(key)
                return {"key": key, "feats": feats, "t0": t0}
        cfg = state.model.config
        if state.volumes[0].is_2d:
            u8 = slice_input(self.slice_unit(state.volumes[0]), cfg.input_size)
            x = torch.from_numpy(network_input(np.repeat(u8, cfg.patch_size[0], axis=0)))[None, None, None]
        else:
            x = torch.from_numpy(np.stack([self.scan_input(v, cfg.input_size) for v in state.volumes]))[None, :, None]
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
        """"MR" or "CT" for the prompt template: the DICOM modality; for "OT"/"XC" (NIfTI, PNG, …) a 2D slice is CT
        (the only 2D training data is head CT) and a 3D volume is CT when its values span HU-like −500…500."""
        if volume.modality in ("MR", "CT"):
            return volume.modality
        if volume.is_2d:
            return "CT"
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

    def two_way(self, pos: str, neg: str, image: Any, scale: float) -> float:
        """Calibrated ``P(pos)`` of the 2-way softmax (pos, neg) for one image embedding (temperature applied
        by the caller through ``scale``)."""
        import torch

        t = self.text_embeddings([pos, neg])
        return float(torch.softmax(scale * t @ image, dim=0)[0])

    def map_grids(self, volume: Volume, size: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, Any]:
        """Where the shown map lives for one scan: ``(mask, affine, upsample)``.

        3D: the model grid ``D × H × W`` (mask = the intensity foreground resized to it — a skull-stripped MRI's
        brain as it is, a CT's head cleaned by :func:`engines.hlip.anatomy.clean_mask`; affine = scan affine @
        grid→input); 2D: the slice's own ``J × I`` pixels (the token map is upsampled over the square pad and
        cropped). ``upsample(token_map [D', H', W'])`` gives the map on that grid (``size`` = the model's
        ``(D, H, W)``).
        """
        import torch
        import torch.nn.functional as F

        from engines.hlip.anatomy import clean_mask, foreground, grey01_mask
        from engines.hlip.preprocess import pad_offsets, resize_scan

        if volume.is_2d:
            j, i = volume.shape3d[1:]
            side, (oj, oi) = max(j, i), pad_offsets((j, i))
            grey = self.slice_unit(volume)
            mask = grey01_mask(grey)[None]

            def up2(t: np.ndarray) -> np.ndarray:
                m = F.interpolate(torch.from_numpy(t[:1])[None], size=(side, side), mode="bilinear",
                                  align_corners=False)[0, 0].numpy()
                return m[None, oj:oj + j, oi:oi + i]

            return mask, volume.affine, up2
        mask = resize_scan(foreground(volume.data3d).astype(np.float32), size) > 0.5
        if float(np.min(volume.data3d)) < -500.0:  # CT in HU: the head, with its dark CSF spaces filled
            mask = clean_mask(mask)

        def up3(t: np.ndarray) -> np.ndarray:
            return F.interpolate(torch.from_numpy(t)[None, None], size=size, mode="trilinear",
                                 align_corners=False)[0, 0].numpy()

        return mask, volume.affine @ grid_to_input_matrix(size, volume.shape3d), up3

    def postprocess(self, state: RunState) -> EngineResult:
        """Study-level scores (calibrated 2-way score of the validated finding first, then the class softmax and
        P(query)), and one probability map per scan inside the head/brain (hidden unless validated)."""
        import time

        import torch

        model, volumes, query, feats = state.model, state.volumes, state.query, state.outputs
        t_img = time.perf_counter() - state.inputs["t0"]
        cached = state.inputs["feats"] is not None
        t1 = time.perf_counter()
        mod = self.prompt_modality(volumes[0])
        temp = self.calibration.t(family(mod))
        raw_scale = float(model.logit_scale.detach().clamp(max=float(np.log(100.0))).exp())
        scale = raw_scale / temp
        finding = reports.BINARY_TASKS[family(mod)][0]
        pos, neg = (reports.prompt(c, mod) for c in reports.BINARY_TASKS[family(mod)])
        scores = {f"“{finding}” vs “no {finding}” (study)": self.two_way(pos, neg, feats.image, scale)}
        prompts = [reports.prompt(c, mod) for c in self.classes]
        cls_prob = torch.softmax(scale * self.text_embeddings(prompts) @ feats.image, dim=0).numpy().astype(float)
        scores.update({c: float(p) for c, p in zip(self.classes, cls_prob, strict=True)})
        notes = []
        target_name, target_prompt = finding, pos
        if query and query.strip():
            qpos, qneg = self.query_prompt(query, mod)
            label = query.strip()
            scores[f"“{label}” vs “no {label}”"] = self.two_way(qpos, qneg, feats.image, scale)
            target_name, target_prompt = label, qpos
            notes.append(f"Query prompt: “{qpos}” (2-way against “{qneg}”).")
        if self.calibration.fitted:
            notes.append(f"Scores calibrated on the validation split (temperature {temp:.2f} for {family(mod)} "
                         "prompts).")
        else:
            notes.append("Scores are not calibrated: no calibration.json was fitted for these weights.")
        overlays = []
        if target_name.strip().rstrip(".").lower() == REFERENCE_CLASS.lower():
            notes.append(f"No map for “{REFERENCE_CLASS}”: the map compares a finding with that report.")
        else:
            tq = self.text_embeddings([target_prompt, reports.prompt(REFERENCE_CLASS, mod)])
            cos = torch.einsum("ndhwe,te->tndhw", feats.dense, tq).numpy()
            prob = token_probability(cos[0], cos[1], raw_scale, temp)
            validated = self.calibration.heatmap_validated
            shown = validated or bool(query and query.strip())  # a typed query asks for its map: shown, with the note
            for s, v in enumerate(volumes):
                mask, affine, up = self.map_grids(v, model.config.input_size)
                m = np.where(mask, np.clip(up(prob[s]), 0.0, 1.0), 0.0).astype(np.float32)
                if v.is_2d:
                    m = m[0]
                ov = Volume(m, affine=affine, modality=v.modality, spacing_known=v.spacing_known,
                            metadata={"query": target_name, "source": self.id, "scan": s, "grid": list(feats.grid)})
                name = f"similarity · {target_name}" + (f" · scan {s + 1}" if len(volumes) > 1 else "")
                overlays.append(Overlay(name=name, kind="similarity", volume=ov, value_range=(0.0, 1.0),
                                        colormap="inferno", legend=f"{LEGEND}: “{target_name}”",
                                        units="probability", threshold=MAP_THRESHOLD, visible=shown))
            if not (prob > MAP_THRESHOLD).any():
                notes.append(f"“{target_name}” is nowhere more likely than “{REFERENCE_CLASS}”: the map shows "
                             "nothing above its threshold.")
            if not validated:
                notes.append(f"Heatmap not validated ({self.calibration.heatmap_summary}); "
                             + ("hidden by default: show the layer to look at it, but " if not shown else "")
                             + "do not read it as a localisation.")
        self.last_timing = {"image_s": t_img, "text_s": time.perf_counter() - t1, "image_cached": float(cached)}
        notes.append("Research demo weights, not for clinical use; trained on 4 BRATS patients and 110 head-CT "
                     "slices with rule-generated report texts.")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)


ENGINE_CLASS = HLIPEngine  # found by engines.registry

__all__ = ["HLIPEngine", "token_to_voxel_matrix", "volume_key"]
