"""The two exceptions every engine module may raise (kept apart from :mod:`engines.base` so that
:mod:`engines.device` and the base class do not import each other)."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A problem the user can understand and act on (wrong modality, bad weights…). Plain words."""


class Cancelled(Exception):
    """Raised inside ``run`` when ``cancelled()`` became true; the job adds nothing."""
