"""Save/load HLIP weights as safetensors (fp16 on disk, the config in the metadata) and convert official files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engines.hlip.configs import get_config
from engines.hlip.model import HLIP, HLIPConfig
from engines.weights import load_into, load_safetensors, save_state


def save_weights(model: torch.nn.Module, path: Path, config: HLIPConfig, extra: dict[str, str] | None = None,
                 dtype: torch.dtype = torch.float16) -> None:
    """Write the state dict (floating tensors as ``dtype``) with ``config`` in the metadata."""
    save_state(model, path, {"config": json.dumps(config.to_dict()), **(extra or {})}, dtype)


def read_config(path: Path) -> HLIPConfig:
    """The config in a weights file's metadata (``config`` JSON, or ``config_name`` of a paper config)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" in meta:
        return HLIPConfig.from_dict(json.loads(meta["config"]))
    if "config_name" in meta:
        return get_config(meta["config_name"])
    raise ValueError(f"{path.name} has no 'config' metadata; is it an HLIP weights file? (a converted official "
                     "checkpoint needs --config NAME: python -m engines.hlip.convert)")


def load_model(path: Path, config: HLIPConfig | None = None, expected_sha256: str | None = None) -> HLIP:
    """Build the model from the file's config (or ``config``) and load it strictly, fp32, eval mode."""
    state = load_safetensors(path, expected_sha256)
    model = HLIP(config or read_config(path))
    load_into(model, state, path)
    return model.eval()
