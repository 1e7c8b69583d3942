"""Save/load multires_cxr weights as safetensors (fp16 on disk, the config in the file's metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engines.multires_cxr.model import MultiResConfig, MultiResCXR
from engines.weights import load_into, load_safetensors, save_state, sha256_file

sha256 = sha256_file  # kept for the card tooling


def save_weights(model: torch.nn.Module, path: Path, config: MultiResConfig,
                 extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s state dict to ``path``: floating tensors as fp16, integer buffers unchanged."""
    save_state(model, path, {"config": json.dumps(config.to_dict()), **(extra or {})})


def read_config(path: Path) -> MultiResConfig:
    """The config stored in a weights file's metadata (``ValueError`` if absent)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path.name} has no 'config' metadata; is it a multires_cxr weights file?")
    return MultiResConfig.from_dict(json.loads(meta["config"]))


def load_model(path: Path, config: MultiResConfig | None = None, expected_sha256: str | None = None) -> MultiResCXR:
    """Build the model from the file's config (or ``config``) and load it with ``strict=True`` in fp32.

    Raises:
        EngineError: not a safetensors file, a hash differing from ``expected_sha256``, or a missing /
            unexpected key or shape mismatch (named, with the file).
    """
    state = load_safetensors(path, expected_sha256)  # refuses non-safetensors files before anything else
    model = MultiResCXR(config or read_config(path))
    load_into(model, state, path)
    return model.eval()
