"""Save/load rasalore weights as safetensors: fp16 on disk, the config (and kind) in the file's metadata.

``kind`` is ``"rasalore"`` (stage 2, what the app runs) or ``"ddpt"`` (stage 1). Loading goes through
:func:`engines.weights.load_into` (``strict=True``; missing/unexpected keys and shape mismatches are named).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engines.base import EngineError
from engines.weights import load_into, load_safetensors, save_state


def save_weights(model: torch.nn.Module, path: Path, kind: str, config: dict[str, object],
                 extra: dict[str, str] | None = None) -> None:
    """Write floating tensors as fp16 (others unchanged) with ``{"kind", "config", **extra}`` metadata."""
    save_state(model, path, {"kind": kind, "config": json.dumps(config), **(extra or {})})


def read_meta(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # noqa: BLE001 — any reader failure is a bad file for the user
        raise EngineError(f"{Path(path).name} could not be read as safetensors: {exc}") from exc


def load_stage2(path: Path, expected_sha256: str | None = None):  # noqa: ANN201
    """The stage-2 :class:`~engines.rasalore.model.RASALoRE` in fp32 eval mode, loaded strictly."""
    from engines.rasalore.model import CONFIGS, RASALoRE, RASALoREConfig

    sd = load_safetensors(path, expected_sha256)
    meta = read_meta(path)
    if meta.get("kind", "rasalore") != "rasalore":
        raise EngineError(f"{Path(path).name} holds {meta.get('kind')!r} weights, not the stage-2 RASALoRE network.")
    cfg = RASALoREConfig.from_dict(json.loads(meta["config"])) if "config" in meta else CONFIGS["paper"]
    model = RASALoRE(cfg)
    load_into(model, sd, path, strict=True)
    return model.eval()


def load_stage1(path: Path, build_text: bool = False):  # noqa: ANN201
    """The stage-1 :class:`~engines.rasalore.ddpt.DDPT` (cached text features; no text encoder unless asked)."""
    from engines.rasalore.ddpt import DDPT, DDPTConfig

    sd = load_safetensors(path)
    meta = read_meta(path)
    if meta.get("kind") != "ddpt":
        raise EngineError(f"{Path(path).name} is not a DDPT (stage-1) weights file.")
    model = DDPT(DDPTConfig.from_dict(json.loads(meta["config"])), build_text=build_text)
    load_into(model, sd, path, strict=True)
    return model.eval()
