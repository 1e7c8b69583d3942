"""HLIP's calibrated scores and heatmap gate, stored beside the weights (numpy only).

``calibration.json`` next to ``model.safetensors`` holds what ``python -m engines.hlip.evaluate`` fitted on the
*validation* split for that very file (its SHA-256 is recorded, so the numbers never attach to other weights):

* ``temperature``: one temperature ``T`` per prompt family ("CT", "MR"), fitted by NLL on the validation
  logits of the 2-way task (CT: haemorrhage vs none; MR: glioma vs none). Every softmax the engine shows for that
  family is ``softmax(exp(logit_scale) · cos / T)`` — ranks (AUC) unchanged, confidence honest.
* ``heatmap``: whether the similarity map beat its localisation baseline (pointing game on the held-out BRATS
  tumour studies); the engine hides an unvalidated map by default and says why in the result's notes.

The map itself is a probability per token: ``p = σ(exp(logit_scale) · (cos(patch, finding) − cos(patch,
"no significant abnormalities")) / T)`` — the 2-way "finding vs normal" protocol applied to each patch token, on the
fixed scale [0, 1] with the operating point 0.5 (the finding is more likely than a normal report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MAP_THRESHOLD = 0.5


@dataclass
class Calibration:
    """Temperatures per prompt family and the heatmap gate for one weights file.

    Attributes:
        weights_sha256: the weights these numbers were fitted for ("" = none fitted: identity).
        temperature: prompt family ("CT" / "MR") → T > 0 (absent → 1.0).
        heatmap_validated: whether the map beat its localisation baseline on validation.
        heatmap_summary: one line saying how the map did against the baseline (shown in the notes).
    """

    weights_sha256: str = ""
    temperature: dict[str, float] = field(default_factory=dict)
    heatmap_validated: bool = False
    heatmap_summary: str = "the heatmap has no localisation validation for these weights"

    def t(self, family: str) -> float:
        """The temperature of ``family`` (1.0 when none was fitted)."""
        return float(self.temperature.get(family, 1.0))

    @property
    def fitted(self) -> bool:
        return bool(self.weights_sha256)

    def save(self, path: Path) -> None:
        """Write as JSON atomically (``path`` is usually ``<weights folder>/calibration.json``)."""
        from engines.common.evaluate import write_text_atomic

        write_text_atomic(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def for_weights(cls, weights: Path, sha256: str | None = None) -> Calibration:
        """The calibration beside ``weights`` when it was fitted for that file, else the identity."""
        from engines.common.calibration import read_fitted

        d = read_fitted(Path(weights), sha256)
        if d is None:
            return cls()
        return cls(**{k: d[k] for k in ("weights_sha256", "temperature", "heatmap_validated", "heatmap_summary")
                      if k in d})


def family(modality: str) -> str:
    """Prompt family of a prompt modality: "CT" or "MR"."""
    return "CT" if modality == "CT" else "MR"


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function (float64)."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def token_probability(cos_finding: np.ndarray, cos_normal: np.ndarray, scale: float, temperature: float
                      ) -> np.ndarray:
    """Per-token ``P(finding vs normal) = σ(scale · (cos_finding − cos_normal) / T)`` (any shape, float32)."""
    z = scale * (np.asarray(cos_finding, np.float64) - np.asarray(cos_normal, np.float64)) / temperature
    return sigmoid(z).astype(np.float32)


PROMPTS_FILE = "prompts.safetensors"


def save_prompt_vectors(path: Path, texts: list[str], vectors: np.ndarray) -> None:
    """Store the frozen sentence encoder's vectors ``[T, 384]`` of the fixed prompts (texts in the metadata), so the
    engine scores a study without loading the encoder; only a typed query needs it. Atomic write."""
    from safetensors.numpy import save_file

    from engines.common.evaluate import write_atomic

    tensors = {"vectors": np.ascontiguousarray(vectors, dtype=np.float32)}
    write_atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata={
        "texts": json.dumps(list(texts)), "encoder": "all-MiniLM-L6-v2 (frozen)"}))


def load_prompt_vectors(path: Path) -> dict[str, np.ndarray]:
    """Prompt → sentence-encoder vector ``[384]`` from :func:`save_prompt_vectors` ({} when the file is absent)."""
    if not Path(path).exists():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        texts = json.loads((f.metadata() or {})["texts"])
        vec = f.get_tensor("vectors")
    return {t: v for t, v in zip(texts, vec, strict=True)}
