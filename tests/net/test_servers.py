"""The server list: settings without secrets, secrets in a private file, validation."""

from __future__ import annotations

import json
import stat

from viewer.net import NetError, SecretStore, ServerConfig, connect, dump_servers, load_servers


def test_secrets_stay_out_of_the_settings_and_repr(tmp_path):
    servers = [ServerConfig("PACS", host="pacs.example", port=11112, called_ae="PACS"),
               ServerConfig("Web", kind="dicomweb", url="https://dw.example/dicom-web", auth="bearer",
                            secret="tok-123")]
    store = SecretStore(tmp_path)
    form = dump_servers(servers, store)
    assert "tok-123" not in json.dumps(form) and "tok-123" not in repr(servers[1])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    back = load_servers(form, store)
    assert back == servers and back[1].secret == "tok-123"
    dump_servers(servers[:1], store)  # the web server was removed: its token goes too
    assert "tok-123" not in store.path.read_text()


def test_unusable_settings_are_refused_before_any_connection():
    bad = ServerConfig("", host="", port=0, called_ae="WAY-TOO-LONG-AE-TITLE")
    try:
        connect(bad)
    except NetError as exc:
        msg = str(exc)
    assert "name" in msg and "host" in msg and "port 0" in msg and "AE title" in msg
    assert "http" in ServerConfig("w", kind="dicomweb", url="ftp://x").problems()[0]
