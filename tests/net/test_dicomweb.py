"""DICOMweb against a real Orthanc (its DICOMweb plugin): QIDO-RS, WADO-RS, cancel and resume, credentials,
server down."""

from __future__ import annotations

import logging

import pytest

from tests.net.orthanc import CT_PATIENT, PASSWORD, free_port
from viewer.io.index import StudyIndex
from viewer.net import (
    AuthenticationFailed,
    QueryFilter,
    ServerUnreachable,
    TransferCancelled,
    connect,
    retrieve_series,
)


def test_qido_search_by_each_key(web_config):
    client = connect(web_config)
    client.echo()
    for flt in (QueryFilter(patient_name="lucent"), QueryFilter(patient_id=CT_PATIENT[1]),
                QueryFilter(accession="ACC-20221208"), QueryFilter(modality="CT"),
                QueryFilter(date_from="20221201", date_to="20221231")):
        found = client.find_studies(flt)
        assert [s.patient_id for s in found] == ["LUCENT-0001"], flt
    study = found[0]
    assert study.modalities == ("CT",) and study.n_instances == 20
    (series,) = client.find_series(study.uid)
    assert series.modality == "CT" and series.description == "CT Body 3.0"
    assert len(client.find_instances(study.uid, series.uid)) == 20


def test_wado_retrieve_cancel_then_resume(web_config, library, count_arrivals):
    root, db = library
    client = connect(web_config)
    (study,) = client.find_studies(QueryFilter(patient_id=CT_PATIENT[1]))
    series = client.find_series(study.uid)
    done = []
    with pytest.raises(TransferCancelled):
        retrieve_series(client, series, root, db, progress=lambda d, n: done.append(d),
                        cancelled=lambda: bool(done) and done[-1] >= 3)
    kept = len(list((root / ".partial" / series[0].uid).glob("*.dcm")))
    assert 3 <= kept < 20
    with StudyIndex(db) as index:
        assert index.studies() == []
    arrived = count_arrivals()
    report = retrieve_series(client, series, root, db)
    assert len(arrived) == 20 - kept  # only the missing instances were asked for
    assert (report.skipped, report.fetched) == (kept, 20 - kept)
    with StudyIndex(db) as index:
        (row,) = index.studies()
        assert row.accession == "ACC-20221208" and len(index.series_files(series[0].uid)) == 20


@pytest.mark.parametrize("auth", ["basic", "bearer", "none"])
def test_bad_credentials_are_one_clear_line_without_the_secret(web_config, auth, caplog):
    web_config.auth, web_config.secret = auth, "wrong-" + PASSWORD
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationFailed) as err:
        connect(web_config).find_studies(QueryFilter())
    msg = str(err.value)
    assert "refused" in msg and "HTTP 401" in msg and "\n" not in msg
    assert web_config.secret not in msg and web_config.secret not in caplog.text
    assert web_config.secret not in repr(web_config)


def test_server_down_is_one_clear_line(web_config):
    web_config.url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(ServerUnreachable, match="does not answer"):
        connect(web_config).echo()
