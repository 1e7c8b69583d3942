"""Weights: safetensors only, checked against a model card; clear messages when anything does not fit.

* :func:`load_safetensors` refuses any file that is not safetensors (a pickle or a zip checkpoint renamed
  ``.safetensors`` included — it is never unpickled) and checks the SHA-256 when one is expected.
* :func:`load_into` loads a state dict into a module and names the first missing/unexpected key or shape
  mismatch; fp16 tensors on disk are cast to the module's dtype.
* :class:`ModelCard` reads ``resources/weights/<engine_id>/card.json`` (+ optional ``card.md``);
  :func:`resolve_weights` picks the user's file (from settings) or the shipped one; :func:`load_weights`
  does resolve + hash check + read in one call.

safetensors layout (https://github.com/huggingface/safetensors): 8 bytes little-endian header length N,
then N bytes of UTF-8 JSON (tensor name → dtype/shape/offsets, optional ``__metadata__``), then the data.
torch is imported lazily so that reading a card stays cheap.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.base import EngineError, weights_root

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
CLINICAL_SENTENCE = "research demo weights, not for clinical use"
REQUIRED_CARD_FIELDS = ("engine", "weights_file", "sha256", "data", "training", "metrics", "licence",
                        "intended_use", "limits")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
CONVERT_HINT = "convert it with `lucent convert-weights`"


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_bytes`` chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()


def _sniff_other_format(head: bytes) -> str | None:
    """What a non-safetensors file looks like, from its first bytes."""
    if head.startswith(b"PK\x03\x04"):
        return "a pickle/zip checkpoint"  # torch.save's default: a zip holding data.pkl
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "a pickle/zip checkpoint"  # pickle protocol 2–5 (legacy torch.save, plain pickle)
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 (Keras) file"
    return None


def read_header(path: str | Path) -> dict[str, Any]:
    """The parsed JSON header of a safetensors file (reads at most 8 + header bytes).

    Raises:
        EngineError: the file is missing, empty, truncated, or not safetensors (saying what it looks like).
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"Weights file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        other = _sniff_other_format(head)
        if other:
            raise EngineError(f"{path} is not a safetensors file (it looks like {other}); {CONVERT_HINT}.")
        if len(head) < 8:
            raise EngineError(f"{path} is not a safetensors file (it is only {size} bytes long).")
        n = int.from_bytes(head, "little")
        if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
            raise EngineError(f"{path} is not a safetensors file (no valid header); {CONVERT_HINT}.")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path} is not a safetensors file (its header is not JSON); {CONVERT_HINT}.") from exc
    if not isinstance(header, dict):
        raise EngineError(f"{path} is not a safetensors file (its header is not a JSON object).")
    return header


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when it has none)."""
    meta = read_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape, from the header alone (no tensor data read)."""
    return {k: tuple(v["shape"]) for k, v in read_header(path).items() if k != "__metadata__"}


def check_sha256(path: str | Path, expected: str) -> str:
    """Return the file's SHA-256; :class:`EngineError` when it differs from ``expected`` (hex, any case)."""
    actual = sha256_file(path)
    want = expected.strip().lower()
    if actual != want:
        raise EngineError(f"{path}: SHA-256 mismatch — the model card expects {want[:16]}…, the file has "
                          f"{actual[:16]}…. The file is damaged or was replaced; restore it, or choose it as "
                          "your own weights file in the settings.")
    return actual


def load_safetensors(path: str | Path, expected_sha256: str | None = None,
                     device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file into ``name → tensor`` (dtype as stored, e.g. fp16), never unpickling.

    Args:
        path: the ``.safetensors`` file.
        expected_sha256: hex digest from the model card; checked before any tensor is read.
        device: where the tensors go ("cpu" by default).

    Raises:
        EngineError: missing file, not safetensors (pickle/zip named so), hash mismatch, corrupt data,
            or NaN/Inf in a floating-point tensor.
    """
    path = Path(path)
    read_header(path)
    if expected_sha256:
        check_sha256(path, expected_sha256)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise EngineError(f"{path} could not be read as safetensors: {exc}") from exc
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise EngineError(f"{path}: tensor {name!r} holds NaN or infinite values; the file is damaged "
                              "or was not saved from a trained model.")
    return tensors


def save_state(module: torch.nn.Module, path: str | Path, metadata: dict[str, str], dtype: Any = None) -> None:
    """Write ``module``'s state dict as safetensors: floating tensors as ``dtype`` (default fp16, the shipped
    format), other tensors unchanged, all contiguous on the CPU; ``{"format": "pt", **metadata}`` as metadata."""
    import torch
    from safetensors.torch import save_file

    dtype = torch.float16 if dtype is None else dtype
    sd = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
          for k, v in module.state_dict().items()}
    save_file(sd, str(path), metadata={"format": "pt", **metadata})


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def load_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path = "weights",
              strict: bool = True) -> tuple[list[str], list[str]]:
    """Load ``state_dict`` into ``module``, casting floating tensors to the module's dtypes (fp16 → fp32).

    Args:
        module: the model; its own ``state_dict()`` defines the expected keys and shapes.
        state_dict: tensors read from ``path``.
        path: the file, named in messages.
        strict: when True, any missing or unexpected key is an error (the first one is named).

    Returns:
        ``(missing, unexpected)`` key lists (both empty when ``strict``).

    Raises:
        EngineError: naming the file and the first missing/unexpected key, or the first key whose shape
            differs, with the expected and found shapes.
    """
    name = Path(path).name or "weights"
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if strict and missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise EngineError(f"{name} does not fit the model: missing key {missing[0]!r} (expected shape "
                          f"{_shape(own[missing[0]])}){more}.")
    if strict and unexpected:
        more = f" (and {len(unexpected) - 1} more unexpected)" if len(unexpected) > 1 else ""
        raise EngineError(f"{name} does not fit the model: unexpected key {unexpected[0]!r} (shape "
                          f"{_shape(state_dict[unexpected[0]])}){more}.")
    cast: dict[str, torch.Tensor] = {}
    for k, target in own.items():
        if k not in state_dict:
            continue
        t = state_dict[k]
        if _shape(t) != _shape(target):
            raise EngineError(f"{name}: key {k!r} has shape {_shape(t)} in the file, but the model expects "
                              f"{_shape(target)}.")
        if t.is_floating_point() and target.is_floating_point() and t.dtype != target.dtype:
            t = t.to(target.dtype)
        cast[k] = t
    try:
        module.load_state_dict(cast, strict=strict)
    except RuntimeError as exc:  # anything torch finds that the checks above did not
        raise EngineError(f"{name} could not be loaded into the model: {exc}") from exc
    return missing, unexpected


# ---- model cards -------------------------------------------------------------------------------------
@dataclass
class ModelCard:
    """A shipped weights file's card (``resources/weights/<engine>/card.json``).

    Attributes:
        engine: engine id. weights_file: file name next to the card. sha256: hex digest of that file.
        directory: the folder holding the card.
        data: what it was trained on. training: steps, hardware, command (free-form dict).
        metrics: numbers plus the ``command`` that produced them. licence, intended_use, limits: text.
        title: engine title. raw: the whole JSON (engines add their own fields).
    """

    engine: str
    weights_file: str
    sha256: str
    directory: Path
    data: Any = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    licence: str = ""
    intended_use: str = ""
    limits: Any = None
    title: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def path_for(cls, engine_id: str, root: Path | None = None) -> Path:
        """Where the card of ``engine_id`` lives."""
        return (root or weights_root()) / engine_id / "card.json"

    @classmethod
    def exists(cls, engine_id: str, root: Path | None = None) -> bool:
        """Whether ``engine_id`` ships a card."""
        return cls.path_for(engine_id, root).is_file()

    @classmethod
    def load(cls, engine_id: str, root: Path | None = None) -> ModelCard:
        """Read the card of ``engine_id`` (see :meth:`problems` for a completeness check).

        Raises:
            EngineError: no card, invalid JSON, or engine/weights_file/sha256 missing (named).
        """
        path = cls.path_for(engine_id, root)
        if not path.is_file():
            raise EngineError(f"No model card for engine {engine_id!r} (looked for {path}).")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EngineError(f"The model card {path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise EngineError(f"The model card {path} must be a JSON object.")
        absent = [f for f in ("engine", "weights_file", "sha256") if not raw.get(f)]
        if absent:
            raise EngineError(f"The model card {path} lacks {', '.join(absent)}.")
        return cls(engine=str(raw["engine"]), weights_file=str(raw["weights_file"]), sha256=str(raw["sha256"]),
                   directory=path.parent, data=raw.get("data"), training=dict(raw.get("training") or {}),
                   metrics=dict(raw.get("metrics") or {}), licence=str(raw.get("licence", "")),
                   intended_use=str(raw.get("intended_use", "")), limits=raw.get("limits"),
                   title=str(raw.get("title", "")), raw=raw)

    @property
    def weights_path(self) -> Path:
        """The shipped weights file."""
        return self.directory / self.weights_file

    @property
    def sha256_short(self) -> str:
        """First 12 hex digits of the recorded hash (for lists and legends)."""
        return self.sha256[:12]

    def problems(self) -> list[str]:
        """What the card lacks against the project's requirements (empty when complete)."""
        out = [f"missing field {f!r}" for f in REQUIRED_CARD_FIELDS if not self.raw.get(f)]
        if CLINICAL_SENTENCE not in self.intended_use.lower():
            out.append(f"intended_use must say {CLINICAL_SENTENCE!r}")
        if self.metrics and "command" not in self.metrics:
            out.append("metrics lack the 'command' that produced them")
        out += [f"training lacks {f!r}" for f in ("steps", "hardware", "command") if f not in self.training]
        if not self.weights_path.is_file():
            out.append(f"weights file {self.weights_file} is absent")
        return out

    def text(self) -> str:
        """Human-readable card: ``card.md`` when shipped, else a summary built from the JSON."""
        md = self.directory / "card.md"
        if md.is_file():
            return md.read_text(encoding="utf-8")
        lines = [f"# {self.title or self.engine} — model card", "", f"**Intended use:** {self.intended_use}", "",
                 f"**Weights:** {self.weights_file} (SHA-256 {self.sha256})", ""]
        if self.data:
            data = self.data if isinstance(self.data, str) else json.dumps(self.data, indent=1)
            lines += ["## Data", "", data, ""]
        if self.training:
            lines += ["## Training", ""] + [f"- {k}: {v}" for k, v in self.training.items()] + [""]
        if self.metrics:
            lines += ["## Metrics", "", f"Command: `{self.metrics.get('command', '?')}`", ""]
        lines += ["## Licence", "", self.licence, ""]
        if self.limits:
            lim = self.limits if isinstance(self.limits, list) else [self.limits]
            lines += ["## Limits", ""] + [f"- {x}" for x in lim]
        return "\n".join(lines)


def resolve_weights(engine_id: str, user_path: str | Path | None = None,
                    root: Path | None = None) -> tuple[Path, ModelCard | None]:
    """The weights file to use and the engine's card (None when it ships none).

    A ``user_path`` (from the settings) overrides the shipped file: it must exist, and its hash is not
    checked against the card (show :func:`sha256_file` of it instead). Without one, the card's file is used.

    Raises:
        EngineError: the user file is missing, or there is neither a user file nor a shipped card/file.
    """
    card = ModelCard.load(engine_id, root) if ModelCard.exists(engine_id, root) else None
    if user_path:
        p = Path(user_path).expanduser()
        if not p.is_file():
            raise EngineError(f"Your weights file for {engine_id} was not found: {p}")
        return p, card
    if card is None:
        raise EngineError(f"Engine {engine_id!r} ships no weights (no {ModelCard.path_for(engine_id, root)}); "
                          "choose a weights file in the settings.")
    if not card.weights_path.is_file():
        raise EngineError(f"The shipped weights of {engine_id} are missing: {card.weights_path}")
    return card.weights_path, card


def expected_hash(path: Path, card: ModelCard | None) -> str | None:
    """The card's hash when ``path`` is the card's own file, else None (user files are not checked)."""
    if card is None:
        return None
    try:
        same = path.resolve() == card.weights_path.resolve()
    except OSError:
        same = False
    return card.sha256 if same else None


def load_weights(engine_id: str, user_path: str | Path | None = None,
                 root: Path | None = None) -> tuple[dict[str, torch.Tensor], Path, ModelCard | None]:
    """Resolve, hash-check (shipped file only) and read an engine's weights.

    Returns:
        ``(state_dict, path, card)``; pass the state dict and path to :func:`load_into`.
    """
    path, card = resolve_weights(engine_id, user_path, root)
    return load_safetensors(path, expected_hash(path, card)), path, card
