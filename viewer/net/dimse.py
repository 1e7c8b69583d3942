"""A DICOM node (PACS) over DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

:class:`DimseClient` opens one association per operation and closes it afterwards. Failures become the
one-line :mod:`viewer.net.errors` messages: nothing listening → :class:`ServerUnreachable`, an A-ASSOCIATE-RJ
→ :class:`AssociationRejected`, a failure status → :class:`RemoteError`, ``cancelled()`` → the association is
aborted and :class:`TransferCancelled` raised.

C-GET receives the instances on the same association; C-MOVE starts a storage SCP on
``config.store_port`` that accepts associations only from the server's AE title, for the time of the move.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydicom.dataset import Dataset

from .errors import AssociationRejected, NetError, RemoteError, ServerUnreachable, TransferCancelled
from .library import SeriesWriter
from .records import QueryFilter, RemoteSeries, RemoteStudy, matches, series_from_dataset, study_from_dataset
from .servers import ServerConfig

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]
_PENDING = (0xFF00, 0xFF01)
_REJECT_REASONS = {
    (1, 1, 2): "the server does not support the application context",
    (1, 1, 3): "the server does not know Lucent's AE title (add the calling AE title on the server)",
    (1, 1, 7): "the server's AE title does not match (check the called AE title)",
    (2, 2, 2): "the server does not support the protocol version",
    (1, 3, 1): "the server is temporarily congested",
    (2, 3, 1): "the server is temporarily congested",
    (2, 3, 2): "the server reached its local association limit",
}


def _never() -> bool:
    return False


def _no_progress(done: int, total: int) -> None:
    return None


class DimseClient:
    """Query/retrieve/store against one DICOM node described by ``config`` (kind "dimse")."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    # ---- association -------------------------------------------------------------------------------
    def _ae(self):  # noqa: ANN202 - pynetdicom.AE
        from pynetdicom import AE

        ae = AE(ae_title=self.config.calling_ae)
        t = float(self.config.timeout_s)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
        ae.connection_timeout = min(t, 10.0)
        ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
        return ae

    def _tls(self) -> tuple[ssl.SSLContext, str] | None:
        if not self.config.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.config.ca_file or None)
        return ctx, self.config.host

    def _check_reachable(self) -> None:
        c = self.config
        try:
            with socket.create_connection((c.host, int(c.port)), timeout=min(float(c.timeout_s), 10.0)):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServerUnreachable(f"{c.describe()}: the server does not answer ({reason}); is it running "
                                    "and are host and port right?") from None

    @contextmanager
    def _association(self, ae, handlers: list | None = None,  # noqa: ANN001 - pynetdicom.AE
                     roles: list | None = None) -> Iterator:
        """An established association with the server (released at the end of the block)."""
        c = self.config
        self._check_reachable()
        assoc = ae.associate(c.host, int(c.port), ae_title=c.called_ae, tls_args=self._tls(),
                             ext_neg=roles or None, evt_handlers=handlers or [])
        if assoc.is_rejected:
            rj = _rejection_of(assoc)
            why = _REJECT_REASONS.get(rj, "check the called and calling AE titles") if rj else \
                "check the called and calling AE titles"
            raise AssociationRejected(f"{c.describe()} rejected the association as {c.calling_ae}: {why}")
        if not assoc.is_established:
            what = "with TLS " if c.tls else ""
            raise ServerUnreachable(f"{c.describe()}: could not open a DICOM association {what}(aborted or "
                                    "timed out; check the port, TLS setting and AE titles)")
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    # ---- verification and queries ----------------------------------------------------------------------
    def echo(self) -> None:
        """C-ECHO; raises a :class:`NetError` unless the server answers with Success."""
        from pynetdicom.sop_class import Verification

        ae = self._ae()
        ae.add_requested_context(Verification)
        with self._association(ae) as assoc:
            status = assoc.send_c_echo()
            if not status or status.Status != 0:
                raise RemoteError(f"{self.config.describe()}: C-ECHO failed{_status_text(status)}")

    def _find(self, query: Dataset, limit: int | None = None) -> list[Dataset]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as Find

        ae = self._ae()
        ae.add_requested_context(Find)
        out: list[Dataset] = []
        with self._association(ae) as assoc:
            for status, identifier in assoc.send_c_find(query, Find):
                if not status:
                    raise RemoteError(f"{self.config.describe()}: the query timed out or the connection "
                                      "dropped")
                if status.Status in _PENDING:
                    if identifier is not None:
                        out.append(identifier)
                    if limit is not None and len(out) >= limit:
                        assoc.abort()
                        break
                elif status.Status != 0:
                    raise RemoteError(f"{self.config.describe()}: C-FIND failed{_status_text(status)}")
        return out

    def find_studies(self, flt: QueryFilter) -> list[RemoteStudy]:
        """C-FIND at STUDY level with ``flt``'s keys; at most ``flt.limit`` studies."""
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.PatientName = flt.name_pattern()
        q.PatientID = flt.patient_id.strip()
        q.AccessionNumber = flt.accession.strip()
        q.ModalitiesInStudy = flt.modality.strip().upper()
        q.StudyDate = flt.date_range()
        for kw in ("StudyInstanceUID", "PatientBirthDate", "StudyDescription", "NumberOfStudyRelatedSeries",
                   "NumberOfStudyRelatedInstances"):
            setattr(q, kw, "")
        found = [study_from_dataset(d) for d in self._find(q, flt.limit)]
        return [s for s in found if s.uid and matches(s, flt)]

    def find_series(self, study_uid: str) -> list[RemoteSeries]:
        """C-FIND at SERIES level: the series of one study."""
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        for kw in ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
                   "NumberOfSeriesRelatedInstances"):
            setattr(q, kw, "")
        found = self._find(q)
        return [series_from_dataset(d, study_uid) for d in found if getattr(d, "SeriesInstanceUID", "")]

    def find_instances(self, study_uid: str, series_uid: str) -> dict[str, str]:
        """C-FIND at IMAGE level: SOPInstanceUID → SOPClassUID of one series."""
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID, q.SeriesInstanceUID = study_uid, series_uid
        q.SOPInstanceUID = ""
        q.SOPClassUID = ""
        return {str(d.SOPInstanceUID): str(getattr(d, "SOPClassUID", "") or "") for d in self._find(q)
                if getattr(d, "SOPInstanceUID", "")}

    # ---- retrieve ----------------------------------------------------------------------------------
    def retrieve(self, study_uid: str, series_uid: str, writer: SeriesWriter, instances: dict[str, str],
                 progress: Progress = _no_progress, cancelled: Cancelled = _never) -> None:
        """Fetch the ``instances`` (SOPInstanceUID → SOPClassUID) of a series not yet in ``writer``.

        The whole series is asked for when nothing is there yet; otherwise only the missing instances
        (IMAGE level), so an interrupted retrieve resumes where it stopped.
        """
        missing = sorted(writer.missing(set(instances)))
        if not missing:
            return
        q = Dataset()
        q.StudyInstanceUID, q.SeriesInstanceUID = study_uid, series_uid
        if len(missing) == len(instances):
            q.QueryRetrieveLevel = "SERIES"
        else:
            q.QueryRetrieveLevel = "IMAGE"
            q.SOPInstanceUID = missing
        classes = sorted({c for c in instances.values() if c}) or [_CT]
        if self.config.retrieve == "move":
            self._move(q, writer, classes, len(instances), progress, cancelled)
        else:
            self._get(q, writer, classes, len(instances), progress, cancelled)

    def _store_handler(self, writer: SeriesWriter, cancelled: Cancelled) -> Callable:
        def on_store(event) -> int:  # noqa: ANN001 - pynetdicom Event
            if cancelled():
                return 0xA700  # refused: out of resources (the association is aborted next)
            try:
                writer.add(event.request.AffectedSOPInstanceUID, event.encoded_dataset())
            except (OSError, ValueError):
                return 0xA700
            return 0x0000

        return on_store

    def _responses(self, responses, writer: SeriesWriter, total: int, progress: Progress,
                   cancelled: Cancelled, assoc, what: str) -> None:  # noqa: ANN001
        for status, _identifier in responses:
            if cancelled():
                assoc.abort()
                raise TransferCancelled(f"Retrieve cancelled: {len(writer.have)} of {total} instances kept; "
                                        "retrieve again to fetch the rest")
            if not status:
                raise RemoteError(f"{self.config.describe()}: {what} timed out or the connection dropped")
            progress(len(writer.have), total)
            code = int(status.Status)
            if code in _PENDING or code == 0:
                continue
            if code == 0xB000:  # warning: some sub-operations failed; the caller counts what is missing
                continue
            raise RemoteError(f"{self.config.describe()}: {what} failed{_status_text(status)}")
        if cancelled():
            raise TransferCancelled(f"Retrieve cancelled: {len(writer.have)} of {total} instances kept; "
                                    "retrieve again to fetch the rest")

    def _get(self, q: Dataset, writer: SeriesWriter, classes: list[str], total: int, progress: Progress,
             cancelled: Cancelled) -> None:
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get

        ae = self._ae()
        ae.add_requested_context(Get)
        roles = []
        # one presentation context per (class, transfer syntax): the server then sends each instance as
        # stored instead of transcoding it to the first syntax of a shared context (Orthanc cannot for J2K)
        per_class = max(1, min(len(RETRIEVE_SYNTAXES), 126 // max(1, len(classes))))
        for uid in classes[:126]:
            for ts in RETRIEVE_SYNTAXES[:per_class]:
                ae.add_requested_context(uid, ts)
            roles.append(build_role(uid, scp_role=True))
        handlers = [(evt.EVT_C_STORE, self._store_handler(writer, cancelled))]
        with self._association(ae, handlers, roles) as assoc:
            self._responses(assoc.send_c_get(q, Get), writer, total, progress, cancelled, assoc, "C-GET")

    def _move(self, q: Dataset, writer: SeriesWriter, classes: list[str], total: int, progress: Progress,
              cancelled: Cancelled) -> None:
        from pynetdicom import ALL_TRANSFER_SYNTAXES, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as Move

        c = self.config
        scp = self._ae()
        for uid in classes[:120]:
            scp.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
        scp.require_calling_aet = [c.called_ae]  # only the configured server may store into Lucent
        try:
            handler = (evt.EVT_C_STORE, self._store_handler(writer, cancelled))
            server = scp.start_server(("", int(c.store_port)), block=False, ssl_context=None,
                                      evt_handlers=[handler])
        except OSError as exc:
            raise NetError(f"Lucent's storage port {c.store_port} for C-MOVE is not free "
                           f"({exc.strerror or exc}); pick another port or use C-GET") from None
        try:
            ae = self._ae()
            ae.add_requested_context(Move)
            with self._association(ae) as assoc:
                self._responses(assoc.send_c_move(q, c.calling_ae, Move), writer, total, progress, cancelled,
                                assoc, "C-MOVE")
        finally:
            server.shutdown()

    # ---- store -------------------------------------------------------------------------------------
    def store(self, datasets: list[Dataset], progress: Progress = _no_progress,
              cancelled: Cancelled = _never) -> int:
        """C-STORE ``datasets`` (in their own transfer syntaxes); returns how many the server accepted."""
        ae = self._ae()
        seen: set[tuple[str, str]] = set()
        for ds in datasets:
            key = (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
            if key not in seen:
                seen.add(key)
                ae.add_requested_context(*key)
        stored = 0
        with self._association(ae) as assoc:
            for n, ds in enumerate(datasets):
                if cancelled():
                    raise TransferCancelled(f"Sending cancelled after {stored} of {len(datasets)} objects")
                status = assoc.send_c_store(ds)
                if not status or int(status.Status) not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise RemoteError(f"{self.config.describe()}: C-STORE of {_what(ds)} failed"
                                      f"{_status_text(status)}")
                stored += 1
                progress(n + 1, len(datasets))
        return stored


_CT = "1.2.840.10008.5.1.4.1.1.2"
#: Transfer syntaxes Lucent accepts instances in, most common first (it decodes all of them)
RETRIEVE_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
)


def _rejection_of(assoc) -> tuple[int, int, int] | None:  # noqa: ANN001
    """(result, source, diagnostic) of an A-ASSOCIATE-RJ, when pynetdicom kept it."""
    prim = getattr(getattr(assoc, "acceptor", None), "primitive", None)
    try:
        return int(prim.result), int(prim.result_source), int(prim.diagnostic)
    except (AttributeError, TypeError, ValueError):
        return None


def _status_text(status: Dataset | None) -> str:
    if not status or "Status" not in status:
        return " (no answer)"
    text = f" (status 0x{int(status.Status):04X}"
    comment = str(status.get("ErrorComment", "") or "").strip()
    return text + (f": {comment})" if comment else ")")


def _what(ds: Dataset) -> str:
    return f"{getattr(ds, 'Modality', '') or 'object'} {getattr(ds, 'SOPInstanceUID', '')}"
