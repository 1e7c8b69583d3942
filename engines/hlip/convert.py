"""Convert an official HLIP checkpoint (Drive ``.pt`` / HF ``pytorch_model.bin``/``model.safetensors``) for Lucent.

    python -m engines.hlip.convert IN OUT.safetensors --config clip_vit_base_multiscan_h3_token1176 [--fp16]

Reads ``.pt``/``.bin`` with ``torch.load(weights_only=True)`` (via :mod:`engines.convert`: unwraps
``state_dict``, strips DDP's ``module.``), drops ``text.transformer.embeddings.position_ids`` (old transformers),
checks every key and shape against the named config with ``strict=True`` and writes safetensors with
``config_name`` in the metadata. The attention schedule (h2 vs h3) cannot be read from the file — it comes from
``--config`` (hlip_spec pitfall 1). The result loads in :func:`engines.hlip.weights_io.load_model`. The BERT text
tower needs its WordPiece vocabulary (BiomedBERT's, or CXR-BERT's for the chest-CT models): a ``vocab.txt`` beside
IN is copied to ``OUT.vocab.txt``; otherwise put the tokenizer's ``vocab.txt`` there by hand (never downloaded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from engines.base import EngineError
from engines.hlip.configs import PAPER_CONFIGS, get_config
from engines.hlip.model import HLIP
from engines.weights import load_into, sha256_file

DROP = ("text.transformer.embeddings.position_ids",)


def convert(src: Path, dst: Path, config: str, fp16: bool = False) -> dict[str, object]:
    """Convert ``src`` → ``dst`` for ``config``; :class:`EngineError` naming the first misfit key."""
    from safetensors.torch import save_file

    from engines.convert import copy_vocab, extract_state_dict
    from engines.weights import load_safetensors, read_header

    try:
        read_header(src)
        sd = dict(load_safetensors(src))
    except EngineError:
        obj = torch.load(str(src), weights_only=True, map_location="cpu")
        sd = extract_state_dict(obj)[0]
    sd = {k: v for k, v in sd.items() if k not in DROP}
    with torch.device("meta"):
        model = HLIP(get_config(config))
    load_into(model, {k: v.to("meta") for k, v in sd.items()}, src)  # strict key/shape check only
    out = {k: (v.to(torch.float16) if fp16 and v.is_floating_point() else v).contiguous().clone() for k, v in sd.items()}
    save_file(out, str(dst), metadata={"format": "pt", "config_name": config, "source": src.name})
    vocab = copy_vocab(src, dst)
    return {"tensors": len(out), "sha256": sha256_file(dst), "config": config, "vocab": str(vocab) if vocab else None}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--config", required=True, choices=sorted(PAPER_CONFIGS))
    ap.add_argument("--fp16", action="store_true")
    a = ap.parse_args(argv)
    print(convert(a.src, a.dst, a.config, a.fp16))


if __name__ == "__main__":
    main()
