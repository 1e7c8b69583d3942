"""The end of every engine's ``evaluate`` command: record how it was run, print the table, write the JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from viewer.io.atomic import atomic_path


def publish(result: dict, module: str, argv: Sequence[str] | None, table: str, out: Path) -> None:
    """Store the command line in ``result["command"]``, print ``table`` and write ``result`` to ``out`` atomically.

    Args:
        result: the evaluation's numbers (JSON-serialisable); gains a "command" entry.
        module: the evaluate module, e.g. "engines.rasalore.evaluate".
        argv: the arguments it was given (None: this process's command line).
        table: the human-readable table printed on stdout.
        out: the JSON file (usually ``eval.json`` beside the weights).
    """
    result["command"] = f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
