"""The frame of every engine's ``evaluate`` command: its standard arguments, and the end that records how it was
run, prints the table and writes the JSON (atomically, without :mod:`viewer.io`: evaluation runs on machines with
torch + numpy only)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


def evaluate_parser(engine_id: str, description: str, threads: int = 1) -> argparse.ArgumentParser:
    """An argument parser with ``--weights`` (default: the shipped file), ``--data``, ``--out`` and ``--threads``.

    Args:
        engine_id: the engine package name; the defaults are ``resources/weights/<id>/model.safetensors`` and
            ``data_prepared/<id>``.
        description: the command's one-line description.
        threads: default torch thread count.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--weights", type=Path, default=Path(f"resources/weights/{engine_id}/model.safetensors"))
    ap.add_argument("--data", type=Path, default=Path(f"data_prepared/{engine_id}"))
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default: eval.json next to the weights)")
    ap.add_argument("--threads", type=int, default=threads)
    return ap


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in the same folder: ``write(tmp)`` fills it, then it replaces
    ``path`` in one step (readers never see half a file). The result is readable by everyone (0644), as a shipped
    file must be; the temporary file is removed if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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
    write_text_atomic(Path(out), json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
