"""The local library writer and the retrieve loop without a server: atomic files, resume, only complete
series indexed, a dropped connection loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.net.orthanc import prepare_ct_series
from viewer.io.index import StudyIndex
from viewer.net import RemoteError, RemoteSeries, retrieve_series
from viewer.net.library import SeriesWriter


class FakeClient:
    """Serves the files of one prepared series; ``fail_after`` drops the connection after that many."""

    def __init__(self, files: list[Path], fail_after: int | None = None) -> None:
        import pydicom

        self.files = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
        self.fail_after = fail_after
        self.sent: list[str] = []

    def find_instances(self, study_uid: str, series_uid: str) -> dict[str, str]:
        return {uid: "1.2.840.10008.5.1.4.1.1.2" for uid in self.files}

    def retrieve(self, study_uid, series_uid, writer, instances, progress, cancelled) -> None:  # noqa: ANN001
        for uid in sorted(writer.missing(set(instances))):
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                raise RemoteError("test PACS: C-GET timed out or the connection dropped")
            writer.add(uid, self.files[uid].read_bytes())
            self.sent.append(uid)
            progress(len(writer.have), len(instances))


@pytest.fixture(scope="module")
def series(shared_data, tmp_path_factory):
    import pydicom

    folder = prepare_ct_series(shared_data / "dicom" / "ct_series", tmp_path_factory.mktemp("ct"))
    files = sorted(folder.iterdir())
    head = pydicom.dcmread(files[0], stop_before_pixels=True)
    return files, RemoteSeries(head.SeriesInstanceUID, head.StudyInstanceUID, "CT", "CT Body 3.0")


def test_a_dropped_connection_loses_nothing_and_the_next_retrieve_fetches_only_the_rest(series, tmp_path):
    files, remote = series
    lib, db = tmp_path / "lib", tmp_path / "db.sqlite"
    first = FakeClient(files, fail_after=7)
    with pytest.raises(RemoteError, match="connection dropped"):
        retrieve_series(first, [remote], lib, db)
    writer = SeriesWriter(lib, remote.study_uid, remote.uid)
    assert len(writer.have) == 7 and not writer.final.exists()
    with StudyIndex(db) as index:
        assert index.counts()["files"] == 0
    second = FakeClient(files)
    report = retrieve_series(second, [remote], lib, db)
    assert len(second.sent) == 13 and not set(second.sent) & set(first.sent)
    assert (report.fetched, report.skipped, report.series) == (13, 7, 1)
    assert sorted(p.name for p in writer.final.iterdir()) == sorted(f"{u}.dcm" for u in second.files)
    assert not writer.partial.exists()
    with StudyIndex(db) as index:
        assert len(index.series_files(remote.uid)) == 20


def test_an_instance_is_written_whole_or_not_at_all(series, tmp_path, monkeypatch):
    files, remote = series
    writer = SeriesWriter(tmp_path, remote.study_uid, remote.uid)

    def full_disk(self, data):  # noqa: ANN001
        self.write_bytes_orig(data[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes_orig", Path.write_bytes, raising=False)
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError):
        writer.add("1.2.3.4", files[0].read_bytes())
    assert list(writer.partial.iterdir()) == [] and "1.2.3.4" not in writer.have


def test_a_killed_write_leaves_no_trace_the_next_writer_counts(series, tmp_path):
    files, remote = series
    writer = SeriesWriter(tmp_path, remote.study_uid, remote.uid)
    writer.add("1.2.3.4", files[0].read_bytes())
    leftover = writer.partial / ".1.2.3.5.dcm.abc123.tmp"  # what atomic_path leaves behind a killed process
    leftover.write_bytes(files[1].read_bytes()[:1000])
    again = SeriesWriter(tmp_path, remote.study_uid, remote.uid)
    assert again.have == {"1.2.3.4"} and not leftover.exists()


def test_uids_are_checked_before_they_become_paths(tmp_path):
    with pytest.raises(ValueError, match="not a DICOM UID"):
        SeriesWriter(tmp_path, "1.2.3", "../../etc")
