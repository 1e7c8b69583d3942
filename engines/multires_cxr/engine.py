"""Lucent engine: multi-resolution weakly supervised chest X-ray diagnosis with LSE-LBA saliency.

Scores and maps are on absolute scales (issue 18): each finding's probability is ``sigmoid(logit / T)`` with the
per-class temperature ``T`` fitted on the validation split (``calibration.json`` beside the weights, written by
``python -m engines.multires_cxr.evaluate``); its map is the instance probability ``sigmoid(S / T)`` on a fixed
0-1 scale, zero outside the lung fields (:func:`engines.common.lung_fields.lung_field_mask`), drawn from the
class's validated operating point up. Weights that pool over the lung fields get them as the pooling region too.

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
from engines.common.geometry import map_to_image_matrix
from engines.common.image import radiograph01
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "multires_cxr"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
LEGEND = "probability per location, sigmoid(S/T) (LSE-LBA class map), lung fields only"
MIN_SIDE = 32


def read_calibration(weights: Path, labels: tuple[str, ...], sha256: str | None) -> dict[str, Any]:
    """Temperatures and operating points from ``calibration.json`` beside ``weights`` when it was fitted for this
    file (same SHA-256, same labels); otherwise T = 1 and threshold 0.5, marked ``fitted: False``."""
    from engines.common.calibration import read_fitted

    out: dict[str, Any] = {"temperature": np.ones(len(labels)), "operating_point": np.full(len(labels), 0.5),
                           "fitted": False}
    cal = read_fitted(weights, sha256)
    if cal is None or tuple(cal.get("labels", ())) != labels:
        return out
    return {"temperature": np.asarray(cal["temperature"], dtype=np.float64),
            "operating_point": np.asarray(cal["operating_point"], dtype=np.float64), "fitted": True}


class MultiResCXREngine(ShippedWeightsEngine):
    """Finding probabilities + LSE-LBA class maps (Yao et al. 2018), on the findings the shared data supports.

    Args:
        weights: a ``.safetensors`` file (default: the shipped demo weights). User files are accepted; their
            config (and finding names) is read from the file's metadata and they are loaded with ``strict=True``.
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

    def __init__(self, weights: str | Path | None = None, top_k: int = 3) -> None:
        super().__init__(weights)
        self.top_k = top_k

    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.multires_cxr.weights_io import load_model, sha256

        model = load_model(path, expected_sha256=expected_sha256)
        model.calibration = read_calibration(path, tuple(model.config.labels), expected_sha256 or sha256(path))
        return model

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def preprocess(self, state: RunState) -> tuple[np.ndarray, Any, np.ndarray]:
        """(normalised image ``[H, W]``, network input ``[1, 1, N, N]``, lung fields on the map grid
        ``[N/4, N/4]`` bool)."""
        import torch

        from engines.common.lung_fields import lung_field_mask
        from engines.multires_cxr.data import MEAN, STD, resize_mask, resize_square

        v = state.volume
        image = radiograph01(v.array[0] if v.array.ndim == 3 and not v.rgb else v.array, v.rgb, self.title, MIN_SIDE)
        n = state.model.config.input_size
        field = resize_mask(lung_field_mask(image), n // 4).astype(bool)
        return image, torch.from_numpy((resize_square(image, n) - MEAN) / STD)[None, None], field

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[Any, Any]:
        """(logits ``[1, C]``, class maps S ``[1, C, n, n]``) on the CPU."""
        import torch

        from engines.multires_cxr.data import uses_lung_fields

        step(0.0, "running the network")
        model = state.model.to(device)
        region = None
        if uses_lung_fields(model.config) and state.inputs[2].any():
            region = torch.from_numpy(state.inputs[2].astype(np.float32))[None, None].to(device)
        with torch.inference_mode():
            logits, s = model(state.inputs[1].to(device), region)
        return logits.float().cpu(), s.float().cpu()

    def postprocess(self, state: RunState) -> EngineResult:
        """Calibrated scores for every finding and lung-gated probability maps for the top-k."""
        from engines.multires_cxr.data import sigmoid

        volume, image, field = state.volume, state.inputs[0], state.inputs[2]
        logits, s = state.outputs
        labels = tuple(state.model.config.labels)
        cal = state.model.calibration
        temps, thresholds = cal["temperature"], cal["operating_point"]
        probs = sigmoid(logits[0].numpy().astype(np.float64) / temps)
        maps = sigmoid(s[0].numpy().astype(np.float64) / temps[:, None, None]) * field
        scores = {name: float(p) for name, p in zip(labels, probs, strict=True)}
        affine = volume.affine @ map_to_image_matrix(maps.shape[-2:], image.shape)
        overlays = []
        for rank, c in enumerate(np.argsort(-probs)[: self.top_k]):
            ov = Volume(maps[c].astype(np.float32), affine=affine, modality=volume.modality,
                        spacing_known=volume.spacing_known,
                        metadata={"finding": labels[c], "probability": float(probs[c]),
                                  "temperature": float(temps[c]), "source": self.id})
            overlays.append(Overlay(name=f"saliency · {labels[c]}", kind="saliency", volume=ov,
                                    value_range=(0.0, 1.0), colormap="inferno",
                                    legend=f"{labels[c]}: {LEGEND} (p = {probs[c]:.2f}; drawn from the "
                                           f"validation operating point {thresholds[c]:.2f})",
                                    units="probability", threshold=float(thresholds[c]),
                                    visible=rank == 0))  # stacked maps would hide the radiograph
        notes = ["Research demo weights, not for clinical use; trained on a tiny, mostly COVID-19 set."]
        if not cal["fitted"]:
            notes.append("No validation calibration for these weights: probabilities are uncalibrated (T = 1).")
        if not field.any():
            notes.append("No lung fields found on this image: the maps are empty.")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)


ENGINE_CLASS = MultiResCXREngine  # found by engines.registry

__all__ = ["MultiResCXREngine", "map_to_image_matrix"]
