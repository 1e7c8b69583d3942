"""Persistent user settings and recent files, in the platform's config folder (platformdirs).

``LUCENT_CONFIG_DIR`` overrides the folder (tests use it). The file is JSON, written atomically
(temporary file + ``os.replace``) so that a crash never leaves half a settings file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from viewer.io.atomic import atomic_path

MAX_RECENT = 10


def config_dir() -> Path:
    """Folder holding ``settings.json``; created on first write."""
    override = os.environ.get("LUCENT_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("lucent", appauthor=False))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file, never a mix."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class Settings:
    """Key/value settings with a recent-files list; every change is saved at once."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or config_dir()) / "settings.json"
        self._data: dict[str, Any] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._data = loaded
        except (OSError, ValueError):
            self._data = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._save()

    def _save(self) -> None:
        with contextlib.suppress(OSError):  # a read-only config folder must not stop the viewer
            atomic_write_text(self.path, json.dumps(self._data, indent=2))

    @property
    def recent_files(self) -> list[str]:
        """Most recent first; only paths that still exist."""
        return [p for p in self._data.get("recent", []) if isinstance(p, str) and Path(p).exists()]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self._data.get("recent", []) if r != p]
        self.set("recent", [p, *recent][:MAX_RECENT])


def atomic_write_bytes_from(path: Path, writer) -> None:
    """Let ``writer(tmp_path)`` write a file, then move it over ``path`` in one step.

    ``writer`` may return False to signal failure (Qt's ``QImage.save`` does), which raises OSError.
    """
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if writer(tmp) is False:
            raise OSError(f"could not write {path}")


def servers(settings: Settings) -> list:
    """The user's PACS/DICOMweb servers (:class:`viewer.net.ServerConfig`), each with its secret."""
    from viewer.net import SecretStore, load_servers

    return load_servers(settings.get("servers", []), SecretStore(settings.path.parent))


def set_servers(settings: Settings, items: list) -> None:
    """Save the server list: the settings file gets everything but the passwords and tokens, which go to a
    file only the user can read (see :class:`viewer.net.SecretStore`)."""
    from viewer.net import SecretStore, dump_servers

    settings.set("servers", dump_servers(list(items), SecretStore(settings.path.parent)))
