"""The frame of every engine's ``prepare`` command (which turns ``../shared/data/...`` into the arrays that training
and evaluation read): its standard arguments."""

from __future__ import annotations

import argparse
from pathlib import Path


def prepare_parser(engine_id: str, description: str, data: str) -> argparse.ArgumentParser:
    """``--data`` (default ``../shared/data/<data>``) and ``--out`` (default ``data_prepared/<engine_id>``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", type=Path, default=Path("../shared/data") / data)
    ap.add_argument("--out", type=Path, default=Path("data_prepared") / engine_id)
    return ap
