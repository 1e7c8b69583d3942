"""Save/load RadZero weights as safetensors (fp16 on disk; config and provenance in the file's metadata).

Loading goes through the shared runtime (:func:`engines.weights.load_safetensors` — safetensors only, SHA-256
checked when expected — and :func:`engines.weights.load_into` with ``strict=True``, naming the first missing or
unexpected key or shape mismatch).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from engines.base import EngineError
from engines.radzero.model import CONFIGS, RadZero, RadZeroConfig, build
from engines.weights import load_into, load_safetensors, read_metadata, save_state


def save_weights(model: RadZero, path: Path, extra: dict[str, str] | None = None) -> None:
    """Write ``model`` to ``path`` (fp16) with ``config`` (JSON) and ``extra`` strings as metadata."""
    save_state(model, path, {"engine": "radzero", "config": json.dumps(model.config.to_dict()), **(extra or {})})


def set_metadata(path: Path, **items: str) -> None:
    """Rewrite ``path`` with extra metadata strings (tensors unchanged)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    meta.update({k: str(v) for k, v in items.items()})
    save_file(load_file(str(path)), str(path), metadata=meta)


def read_config(path: Path) -> RadZeroConfig:
    """The config in a weights file's metadata; files without one are taken as the paper config."""
    meta = read_metadata(path)
    if "config" not in meta:
        return CONFIGS["paper"]
    return RadZeroConfig.from_dict(json.loads(meta["config"]))


def load_model(path: Path, expected_sha256: str | None = None, config: RadZeroConfig | None = None) -> RadZero:
    """Build the model of the file's config (or ``config``), load strictly in fp32, ``eval()`` mode.

    Raises:
        EngineError: not safetensors, hash mismatch, or a key/shape that does not fit (named).
    """
    sd = load_safetensors(path, expected_sha256)
    cfg = config or read_config(path)
    model = build(cfg, empty=True)
    load_into(model, sd, path, strict=True)
    return model.eval()


def threshold_of(path: Path) -> tuple[float, str] | None:
    """The Dice threshold chosen on training data and how (from the metadata), or None."""
    meta = read_metadata(path)
    if "dice_threshold" not in meta:
        return None
    return float(meta["dice_threshold"]), meta.get("dice_threshold_source", "")


__all__ = ["EngineError", "load_model", "read_config", "save_weights", "set_metadata", "threshold_of"]
