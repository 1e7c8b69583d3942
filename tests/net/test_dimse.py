"""DICOM networking against a real Orthanc: C-ECHO, C-FIND, C-GET, C-MOVE, cancel and resume, failures."""

from __future__ import annotations

import socket

import pytest

from tests.net.orthanc import CT_PATIENT, free_port
from viewer.io.index import StudyIndex, load_series
from viewer.net import (
    AssociationRejected,
    NetError,
    QueryFilter,
    ServerUnreachable,
    TransferCancelled,
    connect,
    retrieve_series,
)
from viewer.net.library import SeriesWriter


def _ct_study(client):
    (study,) = client.find_studies(QueryFilter(patient_id=CT_PATIENT[1]))
    return study


def _ct_series(config, how: str):
    """(client, study, series list) of the test CT, retrieving with C-GET or C-MOVE."""
    config.retrieve = how
    client = connect(config)
    study = _ct_study(client)
    return client, study, client.find_series(study.uid)


def test_echo_and_study_search_by_each_key(dimse_config):
    client = connect(dimse_config)
    client.echo()
    everything = client.find_studies(QueryFilter())
    assert {s.patient_id for s in everything} >= {"LUCENT-0001", "5MR2", "9RG1"}
    by = {
        "name": QueryFilter(patient_name="lucent"),  # a plain word matches names that start with it
        "accession": QueryFilter(accession="ACC-20221208"),
        "modality": QueryFilter(modality="CT"),
        "date": QueryFilter(date_from="2022-12-01", date_to="2022-12-31"),
    }
    for key, flt in by.items():
        found = client.find_studies(flt)
        assert [s.patient_id for s in found] == ["LUCENT-0001"], key
    study = found[0]
    assert study.patient_name == "Lucent^Test" and study.modalities == ("CT",) and study.n_series == 1
    assert [s.patient_id for s in client.find_studies(QueryFilter(modality="MR"))] == ["5MR2"]
    assert client.find_studies(QueryFilter(date_to="2000-01-01")) == []


def test_series_and_instances(dimse_config, ct_files):
    client = connect(dimse_config)
    study = _ct_study(client)
    (series,) = client.find_series(study.uid)
    assert series.modality == "CT" and series.n_instances == len(ct_files) == 20
    instances = client.find_instances(study.uid, series.uid)
    assert len(instances) == 20 and set(instances.values()) == {"1.2.840.10008.5.1.4.1.1.2"}


@pytest.mark.parametrize("how", ["get", "move"])
def test_retrieve_indexes_the_complete_series_and_it_opens(dimse_config, library, how):
    root, db = library
    client, study, series = _ct_series(dimse_config, how)
    seen = []
    report = retrieve_series(client, series, root, db, progress=lambda d, n: seen.append((d, n)))
    assert report.series == 1 and report.instances == report.fetched == 20 and report.bytes > 2_000_000
    assert seen[-1] == (20, 20) and all(n == 20 for _d, n in seen)
    assert not any((root / ".partial").glob("*/*.dcm"))
    with StudyIndex(db) as index:
        (row,) = index.studies()
        assert row.uid == study.uid and row.patient_id == "LUCENT-0001"
        paths = index.series_files(series[0].uid)
    assert len(paths) == 20
    vol = load_series(paths, series[0].uid)
    assert vol.shape3d == (20, 512, 512)
    # again: nothing to fetch, nothing duplicated
    again = retrieve_series(client, series, root, db)
    assert again.fetched == 0 and again.skipped == 20
    with StudyIndex(db) as index:
        assert index.counts()["files"] == 20


@pytest.mark.parametrize("how", ["get", "move"])
def test_cancel_keeps_what_arrived_unindexed_and_the_next_retrieve_resumes(dimse_config, library,
                                                                           count_arrivals, how):
    root, db = library
    client, study, series = _ct_series(dimse_config, how)
    done = []

    def progress(d: int, n: int) -> None:
        done.append(d)

    with pytest.raises(TransferCancelled, match="cancelled.*kept"):
        retrieve_series(client, series, root, db, progress=progress,
                        cancelled=lambda: bool(done) and done[-1] >= 5)
    writer = SeriesWriter(root, study.uid, series[0].uid)
    kept = len(writer.have)
    assert 5 <= kept < 20
    assert not writer.final.exists()  # only complete series leave .partial
    assert not [p for p in writer.partial.iterdir() if not p.name.endswith(".dcm")]  # no temporary leftovers
    with StudyIndex(db) as index:
        assert index.counts()["files"] == 0 and index.studies() == []
    arrived = count_arrivals()
    report = retrieve_series(client, series, root, db)
    assert len(arrived) == 20 - kept  # only the missing instances were asked for
    assert report.skipped == kept and report.fetched == 20 - kept and report.instances == 20
    with StudyIndex(db) as index:
        assert len(index.series_files(series[0].uid)) == 20


def test_server_down_is_one_clear_line(dimse_config):
    dimse_config.port = free_port()  # nothing listens there
    with pytest.raises(ServerUnreachable) as err:
        connect(dimse_config).echo()
    msg = str(err.value)
    assert "does not answer" in msg and str(dimse_config.port) in msg and "\n" not in msg


def test_association_rejected_names_the_ae_titles(dimse_config):
    dimse_config.called_ae = "NOT-ORTHANC"
    with pytest.raises(AssociationRejected) as err:
        connect(dimse_config).find_studies(QueryFilter())
    msg = str(err.value)
    assert "rejected the association" in msg and "NOT-ORTHANC" in msg and "called AE title" in msg


def test_move_port_taken_is_reported(dimse_config, library):
    root, db = library
    client, _study, series = _ct_series(dimse_config, "move")
    with socket.socket() as busy:
        # the earlier C-MOVEs leave TIME_WAIT connections on the port
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("", dimse_config.store_port))
        busy.listen()
        with pytest.raises(NetError, match="storage port .* is not free"):
            retrieve_series(client, series, root, db)
