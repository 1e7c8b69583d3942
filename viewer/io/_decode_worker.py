"""Stand-alone decode worker process, run as a script by :mod:`viewer.io.decode_pool`.

It imports only numpy and pydicom (not Lucent), reads pickled tasks on stdin and writes pickled results on
stdout until stdin closes. A task is a list of ``(path, value offset, transfer syntax UID, options, frame)``;
the result is a list of arrays, or ``("error", exception type name, message, path)``.
"""

from __future__ import annotations

import pickle
import sys


def _decode(tasks: list) -> object:
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
            return ("error", type(exc).__name__, str(exc), path)
        out.append(arr)
    return out


def serve() -> None:
    """Answer tasks until the parent closes stdin."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the result stream
    import numpy  # noqa: F401  - warm up before the first task
    import pydicom.pixels  # noqa: F401

    while True:
        try:
            tasks = pickle.load(stdin)
        except EOFError:
            return
        pickle.dump(_decode(tasks), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    serve()
