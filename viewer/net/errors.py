"""What can go wrong talking to a DICOM node or a DICOMweb server, each as one plain sentence.

Every network failure reaches the user as a :class:`NetError` subclass whose ``str()`` is a one-line message
that names the server (never its password or token) and says what to check.
"""

from __future__ import annotations


class NetError(Exception):
    """A network problem the user can act on; ``str(exc)`` is the one-line message."""


class ServerUnreachable(NetError):
    """Nothing answered at the configured host and port (server down, wrong port, firewall)."""


class AssociationRejected(NetError):
    """The DICOM node refused the association (unknown AE title, calling AE not allowed)."""


class AuthenticationFailed(NetError):
    """The server refused the credentials (HTTP 401/403)."""


class TransferCancelled(NetError):
    """The user cancelled; instances stored so far are kept for a later resume."""


class RemoteError(NetError):
    """The server answered with a failure status (C-FIND/C-GET/C-MOVE/C-STORE failure, HTTP 4xx/5xx)."""
