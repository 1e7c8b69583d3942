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

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step
from engines.common.cxr_labels import LABELS
from engines.common.geometry import map_to_image_matrix
from engines.common.image import radiograph01, unit_map
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "multires_cxr"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "class saliency map S (LSE-LBA), min-max normalised per map"
MIN_SIDE = 32


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

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def preprocess(self, state: RunState) -> tuple[np.ndarray, Any]:
        """(normalised image ``[H, W]``, network input ``[1, 1, N, N]``)."""
        import torch

        from engines.multires_cxr.data import MEAN, STD, resize_square

        v = state.volume
        image = radiograph01(v.array[0] if v.array.ndim == 3 and not v.rgb else v.array, v.rgb, self.title, MIN_SIDE)
        n = state.model.config.input_size
        return image, torch.from_numpy((resize_square(image, n) - MEAN) / STD)[None, None]

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[Any, Any]:
        """(logits ``[1, 14]``, class maps S ``[1, 14, n, n]``) on the CPU."""
        import torch

        step(0.0, "running the network")
        with torch.inference_mode():
            logits, s = state.model.to(device)(state.inputs[1].to(device))
        return logits.float().cpu(), s.float().cpu()

    def postprocess(self, state: RunState) -> EngineResult:
        """Scores for the 14 findings and saliency overlays for the top-k (see the module docstring)."""
        import torch

        volume, image = state.volume, state.inputs[0]
        logits, s = state.outputs
        probs = torch.sigmoid(logits)[0].numpy().astype(float)
        maps = s[0].numpy()
        scores = {name: float(p) for name, p in zip(LABELS, probs, strict=True)}
        affine = volume.affine @ map_to_image_matrix(maps.shape[-2:], image.shape)
        overlays = []
        for rank, c in enumerate(np.argsort(-probs)[: self.top_k]):
            norm, lo, hi = unit_map(maps[c])
            ov = Volume(norm, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                        metadata={"finding": LABELS[c], "probability": float(probs[c]),
                                  "raw_logit_range": (lo, hi), "source": self.id})
            overlays.append(Overlay(name=f"saliency · {LABELS[c]}", kind="saliency", volume=ov,
                                    value_range=(0.0, 1.0), colormap="inferno",
                                    legend=f"{LABELS[c]}: {LEGEND} (p = {probs[c]:.2f})", units="a.u.",
                                    visible=rank == 0))  # stacked maps would hide the radiograph
        notes = ["Research demo weights, not for clinical use; trained on a tiny, mostly COVID-19 set."]
        return EngineResult(overlays=overlays, scores=scores, notes=notes)


ENGINE_CLASS = MultiResCXREngine  # found by engines.registry

__all__ = ["MultiResCXREngine", "map_to_image_matrix"]
