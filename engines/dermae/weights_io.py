"""Save/load dermae weights as safetensors (fp16 on disk; config and model kind in the file's metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engines.common.calibration import read_fitted
from engines.dermae.model import MODELS, DermaeConfig
from engines.weights import load_into, load_safetensors, save_state, sha256_file

sha256 = sha256_file


def save_weights(model: torch.nn.Module, path: Path, config: DermaeConfig, kind: str,
                 extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s state dict: floating tensors fp16, integer buffers unchanged; ``kind`` ∈ :data:`MODELS`."""
    save_state(model, path, {"engine": "dermae", "kind": kind, "config": json.dumps(config.to_dict()), **(extra or {})})


def read_meta(path: Path) -> tuple[DermaeConfig, str]:
    """(config, kind) stored in a weights file's metadata (``ValueError`` if absent)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta or meta.get("kind") not in MODELS:
        raise ValueError(f"{Path(path).name} has no dermae 'config'/'kind' metadata; is it a dermae weights file?")
    return DermaeConfig.from_dict(json.loads(meta["config"])), meta["kind"]


def load_model(path: Path, kind: str | None = None, config: DermaeConfig | None = None,
               expected_sha256: str | None = None) -> torch.nn.Module:
    """Build the model of the file's kind/config and load it with ``strict=True`` in fp32 (eval mode).

    Raises:
        EngineError: not safetensors, hash mismatch, missing/unexpected key or shape mismatch (named).
        ValueError: the file's kind differs from ``kind``.
    """
    state = load_safetensors(path, expected_sha256)
    cfg, k = read_meta(path)
    if kind is not None and k != kind:
        raise ValueError(f"{Path(path).name} holds a {k!r} model, not a {kind!r} model")
    model = MODELS[k](config or cfg)
    load_into(model, state, path)
    return model.eval()




def read_calibration(weights: Path) -> dict | None:
    """``calibration.json`` beside ``weights`` when it was fitted for this very file (same SHA-256), else None.

    Keys: ``temperature`` (divides the logits; fitted on the validation split), ``map_scale_logit_units`` (Grad-CAM
    evidence that maps to 1.0 on the fixed map scale; from the training split), ``map_threshold`` (display threshold
    on that scale).
    """
    return read_fitted(Path(weights))
