"""The scaffold of every engine's ``make_card`` command: ship a trained run's files into
``resources/weights/<id>/``, record the evaluation of the shipped file, and write ``card.json`` + ``card.md``.

The engine's own ``make_card`` supplies what differs (its data, training facts, limits and prose); the numbers
on the card come from the engine's ``evaluate`` on the shipped file.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines.weights import sha256_file

REPO = Path(__file__).resolve().parents[2]
HEADLINE = "**research demo weights, not for clinical use**"


def card_dir(engine_id: str) -> Path:
    """``resources/weights/<engine_id>/`` of this checkout."""
    return REPO / "resources" / "weights" / engine_id


def card_parser(engine_id: str, description: str) -> argparse.ArgumentParser:
    """Arguments of every make_card: ``--run`` (the trained run folder), ``--data`` (the prepared arrays) and
    ``--data-arg`` (how ``--data`` is spelled in the recorded commands; default ``data_prepared/<id>``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--data-arg", default=f"data_prepared/{engine_id}",
                    help="how --data is spelled in the recorded commands")
    return ap


def ship(run: Path, out: Path, files: Sequence[str] = ("model.safetensors", "train_log.jsonl")) -> None:
    """Copy ``files`` of a finished run folder into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(run / name, out / name)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict (a run's ``train_summary.json``, an ablation's ``eval.json``…)."""
    return json.loads(path.read_text())


def record_evaluation(res: dict[str, Any], weights: Path, engine_id: str, data_arg: str,
                      name: str = "eval.json") -> dict[str, Any]:
    """Add the shipped file and the evaluate command that reproduces ``res``, write it beside the weights."""
    rel = weights.relative_to(REPO) if weights.is_relative_to(REPO) else weights
    res["weights"] = str(rel)
    res["command"] = f"python -m engines.{engine_id}.evaluate --weights {rel} --data {data_arg}"
    (weights.parent / name).write_text(json.dumps(res, indent=1) + "\n")
    return res


def weights_entry(weights: Path) -> dict[str, Any]:
    """The card's facts about a shipped weights file: name, SHA-256, size, dtype (fp16)."""
    return {"weights_file": weights.name, "sha256": sha256_file(weights), "size_bytes": weights.stat().st_size,
            "dtype": "float16"}


def md_head(card: dict[str, Any], engine_id: str) -> list[str]:
    """The first lines of every ``card.md``: title, the research-demo line, paper and the weights file."""
    return [f"# {card['title']} — model card", "", HEADLINE, "",
            f"Paper: {card['paper']}. Our implementation (engines/{engine_id}); weights `{card['weights_file']}` "
            f"(fp16, {card['size_bytes'] / 1e6:.2f} MB), SHA-256 `{card['sha256']}`.", ""]


def md_licence_limits(licence: str, limits: Sequence[str]) -> list[str]:
    """The licence and limits sections of a ``card.md``."""
    return ["## Licence", "", licence, "", "## Limits", "", *(f"- {x}" for x in limits)]


def write_card(out: Path, card: dict[str, Any], md: Sequence[str], table: str) -> None:
    """Write ``card.json`` and ``card.md`` into ``out``, print the evaluation table and where they went."""
    (out / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    (out / "card.md").write_text("\n".join(md) + "\n")
    print(table)
    print(f"wrote {out}")
