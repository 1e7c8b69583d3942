"""The servers the user configured: DICOM nodes (DIMSE) and DICOMweb services, and their secrets.

A :class:`ServerConfig` is saved in the settings file *without* its password or token: :meth:`to_dict` leaves
them out and ``repr()`` masks them, so neither a settings file, a log line nor a traceback shows them.
Secrets live in a separate file readable by the user only (:class:`SecretStore`, mode 0600, written
atomically), keyed by the server's name. Lucent talks only to the servers listed here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ..io.atomic import atomic_path

Kind = Literal["dimse", "dicomweb"]
Auth = Literal["none", "basic", "bearer"]
Retrieve = Literal["get", "move"]
_AE_OK = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # default character repertoire without backslash


@dataclass
class ServerConfig:
    """One remote server.

    Attributes:
        name: the user's label, unique in the list (the key of its secret).
        kind: "dimse" (a DICOM node: C-ECHO/C-FIND/C-GET/C-MOVE/C-STORE) or "dicomweb" (QIDO/WADO/STOW-RS).
        host, port, called_ae: the DICOM node's address and AE title (dimse).
        calling_ae: Lucent's own AE title, as the server knows it (dimse).
        retrieve: "get" (C-GET, no incoming connection) or "move" (C-MOVE to Lucent's storage SCP).
        store_port: the port of Lucent's storage SCP for C-MOVE (the server must list ``calling_ae`` there).
        url: the DICOMweb service root, e.g. ``https://pacs.example.org/dicom-web`` (dicomweb).
        tls: DICOM over TLS (dimse); for DICOMweb the ``https://`` of the URL decides.
        ca_file: a CA bundle to verify the server's certificate ('' = the system's).
        auth: "none", "basic" (``username`` + password) or "bearer" (token) — DICOMweb only.
        username: for basic auth.
        secret: the password or token; never saved with the rest, never shown by ``repr``.
        timeout_s: network timeout for one request or DIMSE message.
    """

    name: str
    kind: Kind = "dimse"
    host: str = "127.0.0.1"
    port: int = 104
    called_ae: str = "ANY-SCP"
    calling_ae: str = "LUCENT"
    retrieve: Retrieve = "get"
    store_port: int = 11112
    url: str = ""
    tls: bool = False
    ca_file: str = ""
    auth: Auth = "none"
    username: str = ""
    secret: str = field(default="", repr=False)
    timeout_s: float = 30.0

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "secret")
        return f"ServerConfig({shown}, secret={'***' if self.secret else ''!r})"

    def describe(self) -> str:
        """One line naming the server for messages: ``'PACS (ORTHANC@10.0.0.5:4242)'``."""
        where = (f"{self.called_ae}@{self.host}:{self.port}" if self.kind == "dimse" else self.url) or "?"
        return f"{self.name} ({where})"

    def problems(self) -> list[str]:
        """What is wrong with the settings, in words (empty when usable)."""
        out = []
        if not self.name.strip():
            out.append("the server needs a name")
        if self.kind == "dimse":
            if not self.host.strip():
                out.append("the host is empty")
            if not 0 < int(self.port) < 65536:
                out.append(f"port {self.port} is not between 1 and 65535")
            for label, ae in (("called", self.called_ae), ("calling", self.calling_ae)):
                if not _AE_OK.match(ae) or not ae.strip():
                    out.append(f"the {label} AE title {ae!r} must be 1–16 plain characters")
            if self.retrieve == "move" and not 0 < int(self.store_port) < 65536:
                out.append(f"the C-MOVE storage port {self.store_port} is not between 1 and 65535")
        elif self.kind == "dicomweb":
            if not self.url.startswith(("http://", "https://")):
                out.append("the DICOMweb URL must start with http:// or https://")
            if self.auth == "basic" and not self.username:
                out.append("basic authentication needs a user name")
        else:
            out.append(f"unknown server kind {self.kind!r}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The settings-file form: every field except ``secret``."""
        d = asdict(self)
        d.pop("secret")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], secret: str = "") -> ServerConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys ignored, a stray ``secret`` key dropped)."""
        names = {f.name for f in fields(cls)} - {"secret"}
        return cls(**{k: v for k, v in d.items() if k in names}, secret=secret)

    def without_secret(self) -> ServerConfig:
        return replace(self, secret="")


class SecretStore:
    """Passwords and tokens by server name, in ``folder/server-secrets.json`` (mode 0600, atomic writes)."""

    FILE = "server-secrets.json"

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / self.FILE

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, name: str) -> str:
        return self._read().get(name, "")

    def set(self, name: str, secret: str) -> None:
        """Store (or, with '', forget) the secret of server ``name``."""
        data = self._read()
        if secret:
            data[name] = secret
        else:
            data.pop(name, None)
        self._write(data)

    def keep_only(self, names: set[str]) -> None:
        """Forget the secrets of servers no longer listed."""
        data = self._read()
        if set(data) - names:
            self._write({k: v for k, v in data.items() if k in names})

    def _write(self, data: dict[str, str]) -> None:
        with atomic_path(self.path) as tmp:
            os.chmod(tmp, 0o600)  # before any secret is written
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)


def load_servers(items: list[dict[str, Any]] | None, secrets: SecretStore | None) -> list[ServerConfig]:
    """The server list from its settings form, each with its secret from ``secrets``; bad entries skipped."""
    out = []
    for d in items or []:
        if not isinstance(d, dict) or not d.get("name"):
            continue
        try:
            out.append(ServerConfig.from_dict(d, secrets.get(str(d["name"])) if secrets else ""))
        except TypeError:
            continue
    return out


def dump_servers(servers: list[ServerConfig], secrets: SecretStore | None) -> list[dict[str, Any]]:
    """The settings form of ``servers``; their secrets go to ``secrets`` (and only there)."""
    if secrets is not None:
        for s in servers:
            secrets.set(s.name, s.secret)
        secrets.keep_only({s.name for s in servers})
    return [s.to_dict() for s in servers]
