"""A DICOMweb server with dicomweb-client: QIDO-RS (search), WADO-RS (retrieve) and STOW-RS (store).

Authentication rides on the requests session (basic: ``session.auth``; bearer: an ``Authorization`` header),
so the secret never appears in a URL, a log line or a message. TLS certificates are verified (against
``config.ca_file`` when set). Errors become the one-line :mod:`viewer.net.errors` messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from pydicom.dataset import Dataset

from .errors import AuthenticationFailed, NetError, RemoteError, ServerUnreachable, TransferCancelled
from .library import SeriesWriter
from .records import QueryFilter, RemoteSeries, RemoteStudy, matches, series_from_dataset, study_from_dataset
from .servers import ServerConfig

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]
_AS_STORED = (("application/dicom", "*"),)  # no transcoding: the instances as the server holds them


def _never() -> bool:
    return False


def _no_progress(done: int, total: int) -> None:
    return None


class WildcardSession(requests.Session):
    """A requests session with two fixes.

    * QIDO wildcards go out as ``*``: requests escapes them as ``%2A``, which is legal, but some servers
      (Orthanc's DICOMweb plugin 1.7) then match a literal asterisk and find nothing.
    * A CA file set on the session wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (requests lets the
      environment override ``session.verify``, so the server's own CA file would be ignored).
    """

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # noqa: ANN001, ANN201
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        if prepared.url and "?" in prepared.url:
            head, query = prepared.url.split("?", 1)
            prepared.url = head + "?" + query.replace("%2A", "*")
        return prepared


class WebClient:
    """Query/retrieve/store against one DICOMweb service described by ``config`` (kind "dicomweb")."""

    def __init__(self, config: ServerConfig) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.config = config
        self.session = WildcardSession()
        self.session.verify = config.ca_file or True
        if config.auth == "basic":
            self.session.auth = (config.username, config.secret)
        elif config.auth == "bearer":
            self.session.headers["Authorization"] = f"Bearer {config.secret}"
        self.client = DICOMwebClient(config.url.rstrip("/"), session=self.session,
                                     timeout=float(config.timeout_s))
        # dicomweb-client retries every failure 5 times with exponential back-off (~30 s before "server
        # down"); one quick retry is enough for a busy server, and the user hears about a dead one at once
        self.client.set_http_retry_params(max_attempts=2, wait_exponential_multiplier=250)

    def close(self) -> None:
        self.session.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn requests' exceptions into one-line :class:`NetError` messages."""
        c = self.config
        try:
            yield
        except NetError:
            raise
        except requests.exceptions.SSLError:
            raise ServerUnreachable(f"{c.describe()}: the server's TLS certificate could not be verified "
                                    "(set a CA file, or check the URL)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout)
            kind = "did not answer in time" if timed_out else "does not answer"
            raise ServerUnreachable(f"{c.describe()}: the server {kind}; is it running and is the URL "
                                    "right?") from None
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code in (401, 403):
                how = {"basic": "user name and password", "bearer": "token"}.get(c.auth,
                                                                                  "credentials (none set)")
                raise AuthenticationFailed(f"{c.describe()}: the server refused the {how} "
                                           f"(HTTP {code})") from None
            raise RemoteError(f"{c.describe()}: {what} failed (HTTP {code})") from None
        except (ValueError, KeyError) as exc:  # a malformed answer
            raise RemoteError(f"{c.describe()}: {what}: unexpected answer ({type(exc).__name__})") from None

    # ---- queries -----------------------------------------------------------------------------------
    def echo(self) -> None:
        """A one-study QIDO-RS search: checks the URL and the credentials."""
        with self._errors("the test search"):
            self.client.search_for_studies(limit=1)

    def find_studies(self, flt: QueryFilter) -> list[RemoteStudy]:
        """QIDO-RS studies matching ``flt`` (at most ``flt.limit``)."""
        keys = (("PatientName", flt.name_pattern()), ("PatientID", flt.patient_id.strip()),
                ("AccessionNumber", flt.accession.strip()),
                ("ModalitiesInStudy", flt.modality.strip().upper()), ("StudyDate", flt.date_range()))
        filters = {k: v for k, v in keys if v}
        fields = ["StudyDescription", "PatientBirthDate", "NumberOfStudyRelatedSeries",
                  "NumberOfStudyRelatedInstances", "ModalitiesInStudy"]
        with self._errors("the study search"):
            found = self.client.search_for_studies(search_filters=filters, fields=fields, limit=flt.limit)
        studies = [study_from_dataset(Dataset.from_json(d)) for d in found]
        return [s for s in studies if s.uid and matches(s, flt)]

    def find_series(self, study_uid: str) -> list[RemoteSeries]:
        with self._errors("the series search"):
            found = self.client.search_for_series(study_uid, fields=["SeriesDescription", "SeriesNumber",
                                                                     "NumberOfSeriesRelatedInstances"])
        return [series_from_dataset(Dataset.from_json(d), study_uid) for d in found]

    def find_instances(self, study_uid: str, series_uid: str) -> dict[str, str]:
        """SOPInstanceUID → SOPClassUID of one series."""
        with self._errors("the instance search"):
            found = self.client.search_for_instances(study_uid, series_uid, fields=["SOPClassUID"])
        out = {}
        for d in found:
            ds = Dataset.from_json(d)
            if getattr(ds, "SOPInstanceUID", ""):
                out[str(ds.SOPInstanceUID)] = str(getattr(ds, "SOPClassUID", "") or "")
        return out

    # ---- retrieve and store ---------------------------------------------------------------------------
    def retrieve(self, study_uid: str, series_uid: str, writer: SeriesWriter, instances: dict[str, str],
                 progress: Progress = _no_progress, cancelled: Cancelled = _never) -> None:
        """WADO-RS: the whole series streamed when nothing is there yet, else only the missing instances."""
        missing = sorted(writer.missing(set(instances)))
        if not missing:
            return
        total = len(instances)

        def check() -> None:
            if cancelled():
                self.session.close()  # drops the half-read streamed answer with its connection
                raise TransferCancelled(f"Retrieve cancelled: {len(writer.have)} of {total} instances kept; "
                                        "retrieve again to fetch the rest")

        with self._errors("the retrieve"):
            if len(missing) == total:
                for ds in self.client.iter_series(study_uid, series_uid, media_types=_AS_STORED):
                    writer.add_dataset(ds)
                    progress(len(writer.have), total)
                    check()
            else:
                for uid in missing:
                    check()
                    writer.add_dataset(self.client.retrieve_instance(study_uid, series_uid, uid,
                                                                     media_types=_AS_STORED))
                    progress(len(writer.have), total)
        check()

    def store(self, datasets: list[Dataset], progress: Progress = _no_progress,
              cancelled: Cancelled = _never) -> int:
        """STOW-RS ``datasets`` (one request per study); returns how many the server accepted."""
        by_study: dict[str, list[Dataset]] = {}
        for ds in datasets:
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(ds)
        stored = 0
        for study_uid, group in by_study.items():
            if cancelled():
                raise TransferCancelled(f"Sending cancelled after {stored} of {len(datasets)} objects")
            with self._errors("sending (STOW-RS)"):
                answer = self.client.store_instances(group, study_instance_uid=study_uid)
            failed = answer.get("FailedSOPSequence") if answer is not None else None
            if failed:
                reason = failed[0].get("FailureReason", "?")
                raise RemoteError(f"{self.config.describe()}: the server refused {len(failed)} of "
                                  f"{len(group)} objects (failure reason {reason})")
            stored += len(group)
            progress(stored, len(datasets))
        return stored
