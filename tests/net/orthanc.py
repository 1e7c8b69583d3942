"""A private Orthanc for tests and the retrieve bench: loopback only, its own ports, storage and config.

``OrthancServer.start(folder)`` writes ``orthanc.json`` in ``folder`` (free ports, storage and index inside
the folder, the DICOMweb plugin from the Debian package, HTTP basic auth, DICOM modalities that point back to
the test's own C-STORE SCP for C-MOVE) and runs ``Orthanc`` on it; :meth:`OrthancServer.stop` ends it.
Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``scripts/setup.sh`` installs them).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "lucent", "orthanc-test-password"
AET = "ORTHANC"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_missing() -> str | None:
    """Why Orthanc cannot run here (None when it can)."""
    if shutil.which("Orthanc") is None:
        return ("the Orthanc server is not installed (apt-get install orthanc orthanc-dicomweb; "
                "scripts/setup.sh)")
    if not PLUGIN.is_file():
        return f"the Orthanc DICOMweb plugin is missing ({PLUGIN}; apt-get install orthanc-dicomweb)"
    return None


@dataclass
class OrthancServer:
    """A running Orthanc; ``modalities``: name → (AE title, port) of SCPs on 127.0.0.1 it may C-MOVE to."""

    folder: Path
    http_port: int
    dicom_port: int
    modalities: dict[str, tuple[str, int]] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    tls_cert: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @classmethod
    def start(cls, folder: Path, modalities: dict[str, tuple[str, int]] | None = None,
              timeout_s: float = 30.0, env: dict[str, str] | None = None, tls: bool = False) -> OrthancServer:
        """Write the config into ``folder`` and start Orthanc (``env``: extra environment variables).

        With ``tls``, its DICOM port speaks TLS only, with a self-signed certificate for 127.0.0.1 made by
        ``openssl`` (:attr:`tls_cert`, the CA file a client needs). Its HTTP server stays plain: Debian 12's
        Orthanc 1.10.1 crashes (SIGSEGV) on the first HTTPS request."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        server = cls(folder, free_port(), free_port(), dict(modalities or {}))
        config = {
            "Name": "LucentTest",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": server.http_port,
            "DicomPort": server.dicom_port,
            "DicomAet": AET,
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {name: [aet, "127.0.0.1", port]
                                for name, (aet, port) in server.modalities.items()},
            "DicomScuTimeout": 10,
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            "SaveJobs": False,
            "StorageCompression": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "UnknownSopClassAccepted": True,
            "HttpCompressionEnabled": False,
        }
        if tls:
            server.tls_cert = self_signed(folder)
            key = folder / "tls.key"
            config.update({"DicomTlsEnabled": True, "DicomTlsCertificate": str(server.tls_cert),
                           "DicomTlsPrivateKey": str(key),
                           "DicomTlsTrustedCertificates": str(server.tls_cert),
                           "DicomTlsRemoteCertificateRequired": False})
        (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - handed to the process
        server.process = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=log, stderr=log,
                                          cwd=folder, env={**os.environ, **(env or {})})
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                log_tail = (folder / "orthanc.log").read_text()[-3000:]
                raise RuntimeError("Orthanc exited at start:\n" + log_tail)
            try:
                server.rest("GET", "/system")
                return server
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        """End the Orthanc process (terminate, then kill after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rest(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/dicom") -> object:
        """Call Orthanc's REST API with the test user's credentials; returns the JSON answer."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def upload(self, files: list[Path]) -> int:
        """Store ``files`` through the REST API; returns how many Orthanc accepted."""
        n = 0
        for f in files:
            self.rest("POST", "/instances", Path(f).read_bytes())
            n += 1
        return n

    def instances_of_series(self, series_uid: str) -> list[str]:
        """Orthanc ids of the instances of ``series_uid`` held now."""
        found = self.rest("POST", "/tools/lookup", series_uid.encode(), "text/plain") or []
        out: list[str] = []
        for hit in found:
            if hit.get("Type") == "Series":
                out += self.rest("GET", f"/series/{hit['ID']}").get("Instances", [])
        return out

    def delete_series(self, series_uid: str) -> None:
        """Remove ``series_uid`` from Orthanc (a clean slate between tests that send results)."""
        for hit in self.rest("POST", "/tools/lookup", series_uid.encode(), "text/plain") or []:
            if hit.get("Type") == "Series":
                self.rest("DELETE", f"/series/{hit['ID']}")


def self_signed(folder: Path) -> Path:
    """A self-signed certificate (and ``tls.key``) for 127.0.0.1 in ``folder``; returns the certificate."""
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert


# ---- test data ------------------------------------------------------------------------------------------
CT_PATIENT = ("Lucent^Test", "LUCENT-0001", "19700101", "ACC-20221208", "CT abdomen (test)")


def prepare_ct_series(src: Path, out: Path, n_slices: int | None = None, seed: str = "lucent-test",
                      uncompressed: bool = False) -> Path:
    """Copy the shared CT series into ``out`` as a PACS would hold it: the shared files carry no study,
    series or SOP class UIDs, so those are filled in (deterministic from ``seed``) with a test patient.

    With ``n_slices`` larger than the source, real slices are repeated 2 mm apart (as bench_load does) with
    new SOPInstanceUIDs; the J2K pixel data are copied as they are (never decoded), unless ``uncompressed``
    (then decoded once and stored as explicit VR little endian).
    """
    import pydicom
    from pydicom.uid import generate_uid

    out.mkdir(parents=True, exist_ok=True)
    srcs = [pydicom.dcmread(p) for p in sorted(Path(src).iterdir())]
    srcs.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    if uncompressed:
        from pydicom.uid import ExplicitVRLittleEndian

        for ds in srcs:
            ds.PixelData = ds.pixel_array.astype(ds.pixel_array.dtype).tobytes()
            ds["PixelData"].VR = "OW"
            ds["PixelData"].is_undefined_length = False
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    n = n_slices or len(srcs)
    study_uid = generate_uid(entropy_srcs=[seed, "study"])
    series_uid = generate_uid(entropy_srcs=[seed, "series", str(n), str(uncompressed)])
    z0 = float(srcs[0].ImagePositionPatient[2])
    name, pid, birth, accession, description = CT_PATIENT
    for k in range(n):
        ds = srcs[k % len(srcs)]
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, "sop", str(n), str(uncompressed), str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, birth
        ds.AccessionNumber, ds.StudyDescription, ds.StudyID = accession, description, "1"
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        x, y = ds.ImagePositionPatient[0], ds.ImagePositionPatient[1]
        ds.ImagePositionPatient = [x, y, f"{z0 + 2.0 * k:.2f}"]
        ds.save_as(out / f"CT{k:05d}.dcm", enforce_file_format=True)
    return out
