"""The study browser: a searchable list of the local study library (Qt), and ``lucent import`` (cli).

``from app.browser import StudyBrowser`` loads Qt; ``app.browser.cli`` does not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StudyBrowser"]


def __getattr__(name: str) -> Any:
    if name == "StudyBrowser":
        from .panel import StudyBrowser

        return StudyBrowser
    raise AttributeError(name)
