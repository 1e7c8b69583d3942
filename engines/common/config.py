"""Model configs as JSON-able dicts: every engine's weights file carries its config in the safetensors metadata.

:class:`DictConfig` is a mixin for the engines' ``@dataclass`` configs: :meth:`~DictConfig.to_dict` gives plain
JSON types (tuples as lists), :meth:`~DictConfig.from_dict` reads them back (lists as tuples, keys this version
does not know ignored, so that files written by a newer Lucent with extra fields still load).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="DictConfig")


class DictConfig:
    """Mixin for dataclass configs (``to_dict`` / ``from_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON types: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """A config from :meth:`to_dict`'s output (or the JSON of it); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
