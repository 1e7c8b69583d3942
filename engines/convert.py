"""Convert a PyTorch checkpoint (``.pt``/``.pth``/``.bin``) to safetensors, safely.

The checkpoint is read with ``torch.load(weights_only=True, map_location="cpu")``: torch's restricted
unpickler that only rebuilds tensors and plain containers, so a malicious checkpoint cannot run code. Plain
``pickle`` is never used. The state dict is unwrapped from the usual training wrappers (``state_dict``,
``model_state_dict``, ``model``), an optional key prefix is stripped (``module.`` from DDP is stripped when
every key has it), and the result is written atomically (temporary file + ``os.replace``). A tokenizer
vocabulary (``vocab.txt``) lying beside the checkpoint is copied beside the output as ``<name>.vocab.txt``, where
engines with the authors' text towers (RadZero's MPNet, HLIP's BERT) read it (:func:`copy_vocab`).

    lucent convert-weights IN.pt OUT.safetensors [--strip-prefix PREFIX] [--fp16]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.base import EngineError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass
class ConvertReport:
    """What :func:`convert_checkpoint` wrote.

    Attributes:
        path: the safetensors file. sha256: its hex digest. tensors: number of tensors written.
        parameters: total element count. skipped: entries that were not tensors (dropped), by key.
        unwrapped: the wrapper keys descended through, outermost first.
    """

    path: Path
    sha256: str
    tensors: int
    parameters: int
    skipped: list[str] = field(default_factory=list)
    unwrapped: list[str] = field(default_factory=list)
    vocab: Path | None = None


def copy_vocab(src: Path, dst: Path) -> Path | None:
    """Copy ``vocab.txt`` from the checkpoint's folder to ``<dst stem>.vocab.txt`` beside ``dst``; the copy or None.

    The tokenizer of a converted checkpoint's own text tower then travels with it (never downloaded).
    """
    import shutil

    vocab = src.parent / "vocab.txt"
    if not vocab.is_file():
        return None
    out = dst.with_name(f"{dst.stem}.vocab.txt")
    shutil.copyfile(vocab, out)
    return out


def _flatten(obj: Mapping[str, Any], prefix: str, out: dict[str, Any], skipped: list[str]) -> None:
    """Nested dicts of tensors → flat ``a.b.c`` keys; non-tensor leaves go to ``skipped``."""
    import torch

    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[key] = v
        elif isinstance(v, Mapping):
            _flatten(v, f"{key}.", out, skipped)
        else:
            skipped.append(key)


def extract_state_dict(obj: Any, strip_prefix: str | None = None) -> tuple[dict[str, Any], list[str], list[str]]:
    """The tensors of a loaded checkpoint as a flat state dict.

    Args:
        obj: what ``torch.load`` returned.
        strip_prefix: removed from the start of every key that has it; None strips ``module.`` only when
            every key starts with it (a DDP-wrapped model).

    Returns:
        ``(state_dict, skipped_keys, unwrapped_wrapper_keys)``.

    Raises:
        EngineError: the checkpoint holds no tensors (or is not a dict of them).
    """
    unwrapped: list[str] = []
    while isinstance(obj, Mapping):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        unwrapped.append(key)
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise EngineError(f"The checkpoint holds a {type(obj).__name__}, not a dict of tensors (a state dict).")
    flat: dict[str, Any] = {}
    skipped: list[str] = []
    _flatten(obj, "", flat, skipped)
    if not flat:
        raise EngineError("The checkpoint holds no tensors.")
    prefix = strip_prefix
    if prefix is None and all(k.startswith("module.") for k in flat):
        prefix = "module."
    if prefix:
        flat = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in flat.items()}
    return flat, skipped, unwrapped


def convert_checkpoint(src: str | Path, dst: str | Path, strip_prefix: str | None = None,
                       fp16: bool = False, metadata: dict[str, str] | None = None) -> ConvertReport:
    """Read ``src`` with ``torch.load(weights_only=True)`` and write its state dict to ``dst`` (safetensors).

    Args:
        src: a PyTorch checkpoint.
        dst: the output ``.safetensors`` path (written atomically; the folder must exist).
        strip_prefix: key prefix to remove (see :func:`extract_state_dict`).
        fp16: store floating tensors as float16 (halves the file; engines cast back on load).
        metadata: extra ``__metadata__`` strings.

    Raises:
        EngineError: unreadable input, a checkpoint that needs full unpickling (refused), no tensors, or
            an output name that does not end in ``.safetensors``.
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    from engines.weights import read_header, sha256_file

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise EngineError(f"Checkpoint not found: {src}")
    if dst.suffix != ".safetensors":
        raise EngineError(f"The output must end in .safetensors, not {dst.name}.")
    try:
        read_header(src)
    except EngineError:
        pass
    else:
        raise EngineError(f"{src} is already a safetensors file; nothing to convert.")
    try:
        obj = torch.load(str(src), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
        raise EngineError(f"{src} contains Python objects other than tensors, so it was not unpickled "
                          f"(weights_only=True). Save just the model's state_dict and try again. {first}") from exc
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, AttributeError) as exc:
        raise EngineError(f"{src} is not a readable PyTorch checkpoint: {type(exc).__name__}: {exc}") from exc
    flat, skipped, unwrapped = extract_state_dict(obj, strip_prefix)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in flat.items():
        t = v.detach().cpu()
        if fp16 and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[k] = t.contiguous().clone()  # clone: safetensors refuses tensors that share storage
    meta = {"format": "pt", "converted_from": src.name, **(metadata or {})}
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, dst)
    except OSError as exc:
        raise EngineError(f"Cannot write {dst}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return ConvertReport(path=dst, sha256=sha256_file(dst), tensors=len(tensors),
                         parameters=sum(t.numel() for t in tensors.values()), skipped=skipped,
                         unwrapped=unwrapped, vocab=copy_vocab(src, dst))
