"""Stand-alone decode worker process, run as a script by :mod:`viewer.io.decode_pool`.

It imports only numpy and pydicom (not Lucent) and answers requests on stdin/stdout until stdin closes.
Messages are length-prefixed (8-byte little-endian size, then the bytes); nothing is unpickled.

* Request: one JSON message, a list of tasks ``[path, value offset, transfer syntax UID, options, frame]``.
* Reply: a JSON header message — ``{"arrays": [[dtype, shape], …]}`` or
  ``{"error": [exception type name, message, path]}`` — then, for arrays, one message holding their raw
  bytes concatenated in order.
"""

from __future__ import annotations

import json
import struct
import sys


def read_message(stream) -> bytes | None:
    """The next length-prefixed message, or None at end of stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = struct.unpack("<Q", head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("truncated message")
    return data


def write_message(stream, data: bytes) -> None:
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)


def _decode(tasks: list) -> tuple[dict, list]:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    out = []
    for path, offset, ts, opts, index in tasks:
        try:
            decoder = get_decoder(UID(ts))
            with open(path, "rb") as f:
                f.seek(offset)
                arr, _ = decoder.as_array(f, index=index, **opts)
        except Exception as exc:  # reported to the parent, which words the LoadError
            return {"error": [type(exc).__name__, str(exc), path]}, []
        out.append(arr)
    return {"arrays": [[a.dtype.str, list(a.shape)] for a in out]}, out


def serve() -> None:
    """Answer requests until the parent closes stdin."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the reply stream
    import numpy  # noqa: F401  - warm up before the first task
    import pydicom.pixels  # noqa: F401

    while True:
        request = read_message(stdin)
        if request is None:
            return
        header, arrays = _decode(json.loads(request))
        write_message(stdout, json.dumps(header).encode())
        if "arrays" in header:
            write_message(stdout, b"".join(a.tobytes() for a in arrays))
        stdout.flush()


if __name__ == "__main__":
    serve()
