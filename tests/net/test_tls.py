"""TLS: DICOM TLS against an Orthanc whose DICOM port speaks only TLS, and DICOMweb over HTTPS against a small
HTTPS server (Debian 12's Orthanc crashes on HTTPS); both with a self-signed certificate for 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.net.orthanc import AET, OrthancServer, self_signed
from viewer.net import QueryFilter, ServerConfig, ServerUnreachable, connect, retrieve_series

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")


@pytest.fixture(scope="module")
def tls_orthanc(tmp_path_factory, orthanc, ct_files):
    server = OrthancServer.start(tmp_path_factory.mktemp("orthanc_tls"), tls=True)
    try:
        server.upload(ct_files[:3])
        yield server
    finally:
        server.stop()


def test_dicom_tls_association(tls_orthanc, tmp_path):
    cfg = ServerConfig("TLS PACS", host="127.0.0.1", port=tls_orthanc.dicom_port, called_ae=AET, tls=True,
                       ca_file=str(tls_orthanc.tls_cert), timeout_s=10)
    client = connect(cfg)
    client.echo()
    (study,) = client.find_studies(QueryFilter(patient_name="lucent"))
    report = retrieve_series(client, client.find_series(study.uid), tmp_path / "lib", tmp_path / "db.sqlite")
    assert report.fetched == 3
    cfg.tls = False  # plain DICOM to a TLS port: a clear line, not a hang
    with pytest.raises(ServerUnreachable, match="could not open a DICOM association"):
        connect(cfg).echo()


class _Qido(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def https_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("https")
    cert = self_signed(folder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, folder / "tls.key")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Qido)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/dicom-web", cert
    httpd.shutdown()


def test_dicomweb_over_https_checks_the_certificate(https_url):
    url, cert = https_url
    cfg = ServerConfig("TLS web", kind="dicomweb", url=url, ca_file=str(cert), timeout_s=10)
    assert connect(cfg).find_studies(QueryFilter()) == []
    cfg.ca_file = ""  # the system's CAs do not know the self-signed certificate
    with pytest.raises(ServerUnreachable, match="certificate could not be verified"):
        connect(cfg).echo()
