"""The engine registry: which engines exist and which apply to the open study.

Engines live in sub-packages ``engines.<id>`` listed in :data:`KNOWN_ENGINES`. Each exposes either
``ENGINE_CLASS`` (an :class:`~engines.base.Engine` subclass, built with no arguments) or an ``engine()``
factory, in ``engines/<id>/__init__.py`` or ``engines/<id>/engine.py``. Discovery happens on first use, not
on import; ids whose package is absent are skipped silently, and a package that fails to import is
recorded in :func:`failures` (the app can show it) instead of taking the app down.

Importing this module imports neither torch nor Qt; engine packages must keep their torch imports lazy.
Tests and plugins add engines with :func:`register` (and remove them with :func:`unregister`).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engines.base import Engine, EngineError
from viewer.model.volume import Volume

KNOWN_ENGINES: tuple[str, ...] = ("multires_cxr", "radzero", "rasalore", "dermae", "hlip")

_lock = threading.RLock()
_discovered: dict[str, Engine] | None = None
_registered: dict[str, Engine] = {}
_failures: dict[str, str] = {}


def _package_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _factory(module: Any) -> Callable[[], Engine] | None:
    cls = getattr(module, "ENGINE_CLASS", None)
    if cls is not None:
        return cls
    fn = getattr(module, "engine", None)
    return fn if callable(fn) else None


def _load_engine(engine_id: str) -> Engine | None:
    """Build the engine of package ``engines.<engine_id>``; None when the package is absent.

    Raises:
        EngineError: the package exists but exposes no engine, or building it gave something else.
    """
    pkg = f"engines.{engine_id}"
    if not _package_present(pkg):
        return None
    factory = _factory(importlib.import_module(pkg))
    if factory is None and _package_present(f"{pkg}.engine"):
        factory = _factory(importlib.import_module(f"{pkg}.engine"))
    if factory is None:
        raise EngineError(f"{pkg} exposes neither ENGINE_CLASS nor engine()")
    engine = factory()
    if not isinstance(engine, Engine):
        raise EngineError(f"{pkg} built a {type(engine).__name__}, not an Engine")
    if engine.id != engine_id:
        raise EngineError(f"{pkg} built an engine whose id is {engine.id!r}")
    return engine


def _discover() -> dict[str, Engine]:
    global _discovered
    with _lock:
        if _discovered is None:
            found: dict[str, Engine] = {}
            for engine_id in KNOWN_ENGINES:
                try:
                    engine = _load_engine(engine_id)
                except Exception as exc:  # a broken engine must not break the others or the app
                    _failures[engine_id] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
                    continue
                if engine is not None:
                    found[engine_id] = engine
            _discovered = found
        return _discovered


def reset() -> None:
    """Forget discovered engines, failures and registrations (tests)."""
    global _discovered
    with _lock:
        _discovered = None
        _registered.clear()
        _failures.clear()


def register(engine: Engine, replace: bool = False) -> Engine:
    """Add ``engine`` (tests, plugins). A registered engine shadows a discovered one with the same id.

    Raises:
        TypeError: ``engine`` is not an :class:`Engine` instance.
        ValueError: another engine was already registered under that id and ``replace`` is False.
    """
    if not isinstance(engine, Engine):
        raise TypeError(f"register() takes an Engine instance, not {type(engine).__name__}")
    with _lock:
        if engine.id in _registered and not replace and _registered[engine.id] is not engine:
            raise ValueError(f"an engine with id {engine.id!r} is already registered")
        _registered[engine.id] = engine
    return engine


def unregister(engine_id: str) -> None:
    """Remove a registered engine (discovered ones stay)."""
    with _lock:
        _registered.pop(engine_id, None)


@contextmanager
def registered(engine: Engine) -> Iterator[Engine]:
    """``with registered(MyEngine()):`` — register for the block only."""
    register(engine, replace=True)
    try:
        yield engine
    finally:
        unregister(engine.id)


def all_engines() -> list[Engine]:
    """Every available engine: discovered ones in :data:`KNOWN_ENGINES` order, then registered ones."""
    with _lock:
        merged = dict(_discover())
        merged.update(_registered)
        order = [i for i in KNOWN_ENGINES if i in merged] + [i for i in _registered if i not in KNOWN_ENGINES]
        return [merged[i] for i in order]


def ids() -> list[str]:
    """Ids of :func:`all_engines`."""
    return [e.id for e in all_engines()]


def get(engine_id: str) -> Engine:
    """The engine with ``engine_id``.

    Raises:
        EngineError: unknown id (the message lists the available ones), or why a known one failed to load.
    """
    for e in all_engines():
        if e.id == engine_id:
            return e
    why = _failures.get(engine_id)
    if why:
        raise EngineError(f"Engine {engine_id!r} failed to load: {why.splitlines()[0]}")
    known = ", ".join(ids()) or "none"
    raise EngineError(f"No engine {engine_id!r}; available: {known}.")


def applicable(volume: Volume) -> list[Engine]:
    """Engines that accept ``volume`` (modality and 2D/3D), in :func:`all_engines` order."""
    out = []
    for e in all_engines():
        try:
            if e.applies_to(volume):
                out.append(e)
        except Exception:  # a buggy applies_to hides that engine, nothing more
            continue
    return out


def failures() -> dict[str, str]:
    """Engine id → "ExcType: message\\ntraceback" for engine packages that exist but failed to load."""
    _discover()
    return dict(_failures)
