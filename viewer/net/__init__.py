"""DICOM networking (Qt-free): query/retrieve from PACS and DICOMweb servers, and send results back.

Public API:
    ServerConfig, SecretStore, load_servers, dump_servers   the user's server list (secrets kept apart)
    connect(config) -> DimseClient | WebClient              .echo() .find_studies(QueryFilter)
                                                            .find_series(uid) .find_instances(study, series)
                                                            .retrieve(...) .store(datasets)
    retrieve_series(client, series, library, db_path, progress, cancelled) -> RetrieveReport
    QueryFilter, RemoteStudy, RemoteSeries                  plain records
    NetError and its kinds (ServerUnreachable, AssociationRejected, AuthenticationFailed,
    TransferCancelled, RemoteError): str(exc) is the one-line message for the user
    viewer.net.outbox: DICOM-SEG / parametric map / secondary capture / TID 1500 SR of results
"""

from __future__ import annotations

from .errors import (
    AssociationRejected,
    AuthenticationFailed,
    NetError,
    RemoteError,
    ServerUnreachable,
    TransferCancelled,
)
from .library import SeriesWriter, default_library
from .records import QueryFilter, RemoteSeries, RemoteStudy
from .retrieve import RetrieveReport, retrieve_series
from .servers import SecretStore, ServerConfig, dump_servers, load_servers


def connect(config: ServerConfig):  # noqa: ANN201 - DimseClient | WebClient
    """The client for ``config``'s kind; raises NetError when the settings are unusable."""
    problems = config.problems()
    if problems:
        raise NetError(f"{config.name or 'server'}: " + "; ".join(problems))
    if config.kind == "dicomweb":
        from .dicomweb import WebClient

        return WebClient(config)
    from .dimse import DimseClient

    return DimseClient(config)


__all__ = [
    "AssociationRejected", "AuthenticationFailed", "NetError", "QueryFilter", "RemoteError", "RemoteSeries",
    "RemoteStudy", "RetrieveReport", "SecretStore", "SeriesWriter", "ServerConfig", "ServerUnreachable",
    "TransferCancelled", "connect", "default_library", "dump_servers", "load_servers", "retrieve_series",
]  # fmt: skip
