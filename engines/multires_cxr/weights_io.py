"""Save/load multires_cxr weights as safetensors (fp16 on disk, the config in the file's metadata)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engines.multires_cxr.model import MultiResConfig, MultiResCXR


def save_weights(model: torch.nn.Module, path: Path, config: MultiResConfig,
                 extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s state dict to ``path``: floating tensors as fp16, integer buffers unchanged."""
    sd = {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous().cpu()
          for k, v in model.state_dict().items()}
    meta = {"format": "pt", "config": json.dumps(config.to_dict()), **(extra or {})}
    save_file(sd, str(path), metadata=meta)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(path: Path) -> MultiResConfig:
    """The config stored in a weights file's metadata (``ValueError`` if absent)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path.name} has no 'config' metadata; is it a multires_cxr weights file?")
    return MultiResConfig.from_dict(json.loads(meta["config"]))


def load_model(path: Path, config: MultiResConfig | None = None) -> MultiResCXR:
    """Build the model from the file's config (or ``config``) and load it with ``strict=True`` in fp32.

    Raises:
        ValueError: naming the missing/unexpected keys or the first shape mismatch, and the file.
    """
    from safetensors.torch import load_file

    config = config or read_config(path)
    model = MultiResCXR(config)
    sd = load_file(str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path.name} does not match the {config.name} model: missing keys {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                         f"{' …' if len(unexpected) > 5 else ''}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path.name}: key {k!r} has shape {tuple(v.shape)}, the model expects "
                             f"{tuple(own[k].shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)
    return model.eval()
