"""A real Orthanc for the networking tests: started once per session on loopback, stopped at the end.

It holds the shared 20-slice CT series (with the study/series UIDs and test patient that
:func:`tests.net.orthanc.prepare_ct_series` fills in), an MR and a CR from ``dicom/misc``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.net.orthanc import (
    AET,
    PASSWORD,
    USER,
    OrthancServer,
    free_port,
    orthanc_missing,
    prepare_ct_series,
)
from viewer.net import ServerConfig

CALLING_AE = "LUCENTTEST"


@pytest.fixture(scope="session")
def ct_files(shared_data: Path, tmp_path_factory) -> list[Path]:
    """The CT series as the test PACS holds it (files in a session folder)."""
    out = prepare_ct_series(shared_data / "dicom" / "ct_series", tmp_path_factory.mktemp("ct_prepared"))
    return sorted(out.iterdir())


@pytest.fixture(scope="session")
def scp_port() -> int:
    """The port of Lucent's storage SCP for C-MOVE (Orthanc's DicomModalities points there)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory, shared_data: Path, ct_files: list[Path], scp_port: int):
    """A running Orthanc with the test studies uploaded; stopped after the session."""
    why = orthanc_missing()
    if why and os.environ.get("LUCENT_REQUIRE_ORTHANC"):  # CI (.ci/run): a missing Orthanc is a failure
        pytest.fail(why)
    if why:
        pytest.skip(why)
    server = OrthancServer.start(tmp_path_factory.mktemp("orthanc"), {"lucent": (CALLING_AE, scp_port)})
    try:
        misc = shared_data / "dicom" / "misc"
        server.upload([*ct_files, misc / "MR2_UNCR.dcm", misc / "RG1_UNCR.dcm"])
        yield server
    finally:
        server.stop()


@pytest.fixture
def dimse_config(orthanc: OrthancServer, scp_port: int) -> ServerConfig:
    return ServerConfig("Test PACS", kind="dimse", host="127.0.0.1", port=orthanc.dicom_port, called_ae=AET,
                        calling_ae=CALLING_AE, retrieve="get", store_port=scp_port, timeout_s=20)


@pytest.fixture
def web_config(orthanc: OrthancServer) -> ServerConfig:
    return ServerConfig("Test DICOMweb", kind="dicomweb", url=orthanc.dicomweb_url, auth="basic",
                        username=USER, secret=PASSWORD, timeout_s=20)


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path]:
    """(library folder, index database) of a fresh local library."""
    return tmp_path / "library", tmp_path / "studies.sqlite"


@pytest.fixture
def count_arrivals(monkeypatch):
    """``count_arrivals()`` starts recording every instance handed to a SeriesWriter (also those it already
    had — what went over the wire) and returns the list it fills."""
    from viewer.net.library import SeriesWriter

    def start() -> list[str]:
        arrived: list[str] = []
        add = SeriesWriter.add

        def recording_add(self, sop_uid: str, data: bytes) -> bool:
            arrived.append(sop_uid)
            return add(self, sop_uid, data)

        monkeypatch.setattr(SeriesWriter, "add", recording_add)
        return arrived

    return start
