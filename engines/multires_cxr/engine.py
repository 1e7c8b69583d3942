"""Lucent engine: multi-resolution weakly supervised chest X-ray diagnosis with LSE-LBA saliency.

Qt-free; torch is imported lazily inside :meth:`MultiResCXREngine.run` so that importing this module (and
the registry) stays cheap.

Saliency overlay geometry
-------------------------
The network sees the radiograph squashed to ``N × N`` and outputs class maps on an ``n × n`` grid
(``n = N/4``). Map pixel ``(u, v)`` (column, row) covers image pixels whose centres fall in its footprint;
with ``s_u = W/n`` and ``s_v = H/n`` (image width W, height H) its centre lies at image index::

    i = (u + 0.5) · s_u − 0.5,    j = (v + 0.5) · s_v − 0.5

(pixel centres at integer indices in both grids, edges aligned: map edge −0.5 ↔ image edge −0.5). So the
overlay affine is ``image_affine @ M`` with ``M = [[s_u, 0, 0, (s_u − 1)/2], [0, s_v, 0, (s_v − 1)/2],
[0, 0, 1, 0], [0, 0, 0, 1]]`` (:func:`map_to_image_matrix`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import (
    WEIGHTS_ROOT,
    Cancelled,
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
from engines.multires_cxr.labels import LABELS
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "multires_cxr"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "class saliency map S (LSE-LBA), min-max normalised per map"
MIN_SIDE = 32


def map_to_image_matrix(map_shape: tuple[int, int], image_shape: tuple[int, int]) -> np.ndarray:
    """4×4 matrix taking a map index (u, v, k, 1) to the image index (i, j, k, 1).

    Args:
        map_shape: ``(rows, cols)`` of the saliency map.
        image_shape: ``(rows, cols)`` of the image.
    """
    s_v = image_shape[0] / map_shape[0]
    s_u = image_shape[1] / map_shape[1]
    m = np.eye(4)
    m[0, 0], m[0, 3] = s_u, 0.5 * s_u - 0.5
    m[1, 1], m[1, 3] = s_v, 0.5 * s_v - 0.5
    return m


class MultiResCXREngine(ShippedWeightsEngine):
    """14 NIH ChestX-ray14 finding probabilities + LSE-LBA class saliency maps (Yao et al. 2018).

    Args:
        weights: a ``.safetensors`` file (default: the shipped demo weights). User files are accepted; their
            config is read from the file's metadata and they are loaded with ``strict=True``.
        top_k: saliency overlays for the ``top_k`` most probable findings.
    """

    id: ClassVar[str] = "multires_cxr"
    title: ClassVar[str] = "Multi-resolution CXR (LSE-LBA)"
    paper: ClassVar[str] = ("Yao L, Prosky J, Poblenz E, Covington B, Lyman K. Weakly supervised medical diagnosis "
                            "and localization from multiple resolutions. arXiv:1803.07703, 2018.")
    modalities: ClassVar[tuple[str, ...]] = ("CR", "DX", "OT")
    dims: ClassVar[tuple[int, ...]] = (2,)
    takes_query: ClassVar[bool] = False
    outputs = ("scores", "saliency")
    labels: ClassVar[tuple[str, ...]] = LABELS

    def __init__(self, weights: str | Path | None = None, top_k: int = 3) -> None:
        super().__init__(weights)
        self.top_k = top_k

    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.multires_cxr.weights_io import load_model

        return load_model(path, expected_sha256=expected_sha256)

    # ---- run ---------------------------------------------------------------------------------------
    def preprocess(self, volume: Volume) -> np.ndarray:
        """Check and turn the volume into a normalised grey image ``[H, W]`` float32 in [0, 1]."""
        self.check_input(volume)
        a = volume.array
        if a.ndim == 3 and not volume.rgb:
            a = a[0]
        from engines.multires_cxr.data import normalise, to_grey

        grey = to_grey(a, volume.rgb)
        finite_or_raise(grey)
        if min(grey.shape) < MIN_SIDE:
            raise EngineError(f"The image is too small ({grey.shape[1]}×{grey.shape[0]} px); "
                              f"{self.title} needs at least {MIN_SIDE} px per side.")
        try:
            return normalise(grey)
        except ValueError as exc:
            raise EngineError(f"The image is constant (no contrast); nothing to analyse ({exc}).") from exc

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Scores for the 14 findings and saliency overlays for the top-k (see the module docstring)."""
        progress(0.0, "checking the image")
        image = self.preprocess(volume)
        self.check_cancelled(cancelled)
        progress(0.1, "loading weights")
        model = self.load()
        self.check_cancelled(cancelled)
        import torch

        from engines.multires_cxr.data import MEAN, STD, resize_square

        n = model.config.input_size
        progress(0.3, f"resizing to {n}×{n}")
        x = torch.from_numpy((resize_square(image, n) - MEAN) / STD)[None, None]
        self.check_cancelled(cancelled)
        progress(0.4, "running the network")
        dev = torch.device(device if device == "cpu" or torch.cuda.is_available() else "cpu")
        notes: list[str] = []
        try:
            logits, s = self._forward(model, x, dev)
        except torch.OutOfMemoryError:
            notes.append(f"Out of GPU memory on {device}; ran on the CPU instead.")
            logits, s = self._forward(model, x, torch.device("cpu"))
        self.check_cancelled(cancelled)
        progress(0.8, "building overlays")
        probs = torch.sigmoid(logits)[0].numpy().astype(float)
        maps = s[0].numpy()
        scores = {name: float(p) for name, p in zip(LABELS, probs, strict=True)}
        h, w = image.shape
        affine = volume.affine @ map_to_image_matrix(maps.shape[-2:], (h, w))
        overlays = []
        for rank, c in enumerate(np.argsort(-probs)[: self.top_k]):
            self.check_cancelled(cancelled)
            m = maps[c].astype(np.float64)
            lo, hi = float(m.min()), float(m.max())
            norm = ((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)).astype(np.float32)
            ov = Volume(norm, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                        metadata={"finding": LABELS[c], "probability": float(probs[c]),
                                  "raw_logit_range": (lo, hi), "source": self.id})
            overlays.append(Overlay(name=f"saliency · {LABELS[c]}", kind="saliency", volume=ov,
                                    value_range=(0.0, 1.0), colormap="inferno",
                                    legend=f"{LABELS[c]}: {LEGEND} (p = {probs[c]:.2f})", units="a.u.",
                                    visible=rank == 0))  # stacked maps would hide the radiograph
        notes.append("Research demo weights, not for clinical use; trained on a tiny, mostly COVID-19 set.")
        progress(1.0, "done")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)

    @staticmethod
    def _forward(model: Any, x: Any, dev: Any) -> tuple[Any, Any]:
        import torch

        with torch.inference_mode():
            m = model.to(dev)
            logits, s = m(x.to(dev))
        model.to("cpu")
        return logits.float().cpu(), s.float().cpu()


__all__ = ["MultiResCXREngine", "Cancelled", "map_to_image_matrix"]
