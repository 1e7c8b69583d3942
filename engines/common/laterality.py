"""Side agreement: does a chest-radiograph map favour the lung that the clinical note names?

The shared CXR data has no lesion boxes or masks, only lung masks, so a CXR map can be scored against the lungs but
not against findings. Its clinical notes, though, often say which lung holds a finding ("large consolidations in
the right upper lobe …"). On the validation images whose finding sentences name exactly one side, a map *agrees*
when its mean over that lung is higher than over the other (1; 0 when lower, 0.5 on a tie). Lungs are the filled
lung fields (:func:`engines.common.lung_fields.lung_field_mask`) split by :func:`~engines.common.lung_fields.
patient_sides` (frontal films: the patient's right is on the image's left). Two baselines, also scored on the
training images (:func:`baselines`): always the side the training notes name most often, and the brighter lung. A
constant map would tie (0.5); a map that marks findings should agree more often than the baselines.

Used by ``python -m engines.radzero.evaluate --side-agreement`` and ``python -m engines.multires_cxr.evaluate
--side-agreement``, which run the engine exactly as the app does on each PNG and write ``side_agreement.json``
beside the weights; the engines add its one-line :func:`summary` to their results' notes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engines.common.cxr import SPLIT_FILE, load_rows, read_png
from engines.common.evaluate import write_text_atomic
from engines.common.lung_fields import lung_field_mask, patient_sides
from engines.common.validation import compare, comparison_table, mean_of

FILE_NAME = "side_agreement.json"
#: what makes a note's sentence a finding sentence (lower case)
FINDING = re.compile(r"consolidat|opacit|infiltrat|air ?space|lesion|effusion|pneumonia|nodul|collapse|ground.glass")
BOTH = re.compile(r"\bbilateral|\bboth (lungs|sides)")


@dataclass(frozen=True)
class Case:
    """One validation image whose finding sentences name one side: ``side`` "R" or "L" (the patient's), and
    the first such sentence (a query for a grounding engine)."""

    filename: str
    side: str
    sentence: str


def named_side(notes: str) -> tuple[str, str] | None:
    """``(side, sentence)`` when the finding sentences of ``notes`` name exactly one side (right "R" / left "L";
    "bilateral" or "both lungs" names both), else ``None``."""
    sides: set[str] = set()
    first = ""
    for sentence in re.split(r"(?<=[.;])\s+", notes.strip()):
        low = sentence.lower()
        if not FINDING.search(low):
            continue
        found = ({"R"} if re.search(r"\bright\b", low) else set()) | ({"L"} if re.search(r"\bleft\b", low) else set())
        if BOTH.search(low):
            found = {"R", "L"}
        if found and not first:
            first = sentence.strip()
        sides |= found
    return (sides.pop(), first) if len(sides) == 1 else None


def cases(data: Path, side: str = "test", split_file: Path = SPLIT_FILE) -> list[Case]:
    """The images of one side of the CXR split ("test": the held-out validation images; "train") whose notes name
    one lung, in file order."""
    chosen = set(json.loads(Path(split_file).read_text())[side])
    out = []
    for row in load_rows(data):
        named = named_side(row.get("clinical_notes") or "") if row["filename"] in chosen else None
        if named:
            out.append(Case(row["filename"], *named))
    return out


def to_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 2D map resampled (nearest, cell centres) to ``shape`` — maps cover the whole image in both engines."""
    v = np.asarray(values, np.float32).reshape(np.asarray(values).shape[-2:])
    rows = ((np.arange(shape[0]) + 0.5) * v.shape[0] / shape[0]).astype(int)
    cols = ((np.arange(shape[1]) + 0.5) * v.shape[1] / shape[1]).astype(int)
    return v[np.ix_(rows, cols)]


def agreement(values: np.ndarray, right: np.ndarray, left: np.ndarray, side: str) -> float:
    """1 when the map's mean over the named lung beats the other lung's, 0 when it is lower, 0.5 on a tie."""
    r, lf = float(values[right].mean()), float(values[left].mean())
    if r == lf:
        return 0.5
    return float((r > lf) == (side == "R"))


def _lungs(data: Path, case: Case) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    image = read_png(data / "images" / case.filename)
    return image, patient_sides(lung_field_mask(image))


def baselines(train: list[Case]) -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, Case], float]]:
    """The two baselines, each ``agree(image, right, left, case)``, fitted on the training images' notes
    (``train``): the side most often named there (a prior: no image needed) and the brighter lung (mean grey level
    over each lung field: consolidation is white on a film)."""
    prior = Counter(c.side for c in train).most_common(1)[0][0]
    return {f"always the side most often named in the training notes ({prior})":
            lambda image, right, left, case: float(case.side == prior),
            "the brighter lung (mean grey level over each lung field)":
            lambda image, right, left, case: agreement(image, right, left, case.side)}


def evaluate(map_of: Callable[[np.ndarray, Case], np.ndarray], data: Path, what: str) -> dict:
    """Side agreement of ``map_of(image, case)`` (a 2D map over the whole image, any grid) on the validation
    images, beside the baselines of :func:`baselines` (their agreement on the training images is reported too).
    The comparisons are listed strongest baseline first; the verdict is against that one (the engine must beat
    both).

    Args:
        map_of: the engine's map for a grey image ``[H, W]`` (as :func:`engines.common.cxr.read_png` reads it).
        data: ``../shared/data/cxr`` (metadata.csv with the clinical notes, images/).
        what: which map was scored, in words (stored and printed).
    """
    train = cases(data, "train")
    rules = baselines(train)
    on_train: dict[str, list[float]] = {name: [] for name in rules}
    for case in train:
        image, sides = _lungs(data, case)
        if sides is not None:
            for name, rule in rules.items():
                on_train[name].append(rule(image, *sides, case))
    train_share = {name: float(np.mean(v)) for name, v in on_train.items()}
    rows, skipped = [], []
    for case in cases(data):
        image, sides = _lungs(data, case)
        if sides is None:
            skipped.append(case.filename)
            continue
        values = to_grid(map_of(image, case), image.shape)
        right, left = sides
        rows.append({**asdict(case), "mean_right": float(values[right].mean()), "mean_left": float(values[left].mean()),
                     "agreement": agreement(values, right, left, case.side),
                     "baselines": {name: rule(image, right, left, case) for name, rule in rules.items()}})
    result: dict = {"metric": "side agreement", "map": what, "cases": rows, "skipped_no_two_lungs": skipped,
                    "baseline": {"training_agreement": train_share,
                                 "training_cases": len(next(iter(on_train.values())))}}
    if len(rows) >= 2:
        engine = mean_of([r["agreement"] for r in rows])
        found = [asdict(compare("side agreement", name, engine, mean_of([r["baselines"][name] for r in rows]),
                                len(rows))) for name in rules]
        result["comparisons"] = sorted(found, key=lambda c: -c["reference"]["value"])
        result["verdict"] = result["comparisons"][0]["verdict"]
    return result


def format_result(res: dict) -> str:
    """The printed table: per case, the baselines' training agreement, then engine vs each baseline with
    intervals."""
    from engines.common.validation import Comparison, Interval

    lines = [f"side agreement — {res['map']} (validation images whose notes name one lung)",
             f"{'image':45s} side  mean R  mean L  agrees"]
    lines += [f"{r['filename'][:45]:45s}  {r['side']}   {r['mean_right']:.3f}   {r['mean_left']:.3f}   "
              f"{r['agreement']:g}" for r in res["cases"]]
    if res["skipped_no_two_lungs"]:
        lines.append(f"skipped (two lung fields not found): {', '.join(res['skipped_no_two_lungs'])}")
    b = res["baseline"]
    lines.append(f"baselines' agreement on {b['training_cases']} training images: " + "; ".join(
        f"{name} {v:.2f}" for name, v in b["training_agreement"].items()) + "; verdict against the stronger on "
        "validation (listed first)")
    rows = []
    for c in res.get("comparisons", []):
        c = dict(c)
        for k in ("engine", "reference", "difference"):
            c[k] = Interval(**c[k])
        rows.append(Comparison(**c))
    if rows:
        lines += ["", comparison_table(rows)]
    return "\n".join(lines)


def _cxr_folder(text: str) -> Path:
    """``--side-agreement``'s value: a folder with metadata.csv and images/ (else a one-line usage error)."""
    path = Path(text)
    if not (path / "metadata.csv").is_file() or not (path / "images").is_dir():
        raise argparse.ArgumentTypeError(f"{path} has no metadata.csv and images/ (expected ../shared/data/cxr)")
    return path


def add_argument(ap: argparse.ArgumentParser) -> None:
    """The evaluate commands' ``--side-agreement CXR_DATA`` option."""
    ap.add_argument("--side-agreement", type=_cxr_folder, metavar="CXR_DATA",
                    help="score the map the app shows against the lung the clinical notes name (CXR_DATA: "
                         "../shared/data/cxr), write side_agreement.json beside the weights, then stop")


def report(res: dict, folder: Path, module: str, argv: Sequence[str] | None) -> Path:
    """Print ``res`` (:func:`format_result`), store it as ``side_agreement.json`` in the weights' folder and add
    it to the model card there (:func:`add_to_card`); all writes atomic. ``module`` and ``argv`` (None: this
    process's arguments) give the command line stored with it."""
    print(format_result(res))
    res = {**res, "command": f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)}
    path = Path(folder) / FILE_NAME
    write_text_atomic(path, json.dumps(res, indent=1) + "\n")
    add_to_card(folder)
    print(f"wrote {path} and the side check of {Path(folder) / 'card.md'}")
    return path


CARD_HEADING = "## Side check: does the map favour the lung the note names?"
METHOD = ("The data has no lesion boxes, but its clinical notes often say which lung holds a finding. On the "
          "validation films whose finding sentences name one lung, the map agrees when its mean over that lung "
          "(filled lung fields, the patient's right on the image's left) is higher than over the other (1; 0 when "
          "lower; 0.5 on a tie). Baselines, also scored on the training films: always the side the training notes "
          "name most often, and the brighter lung. Bootstrap 95 % intervals over the films; the verdict is against "
          "the stronger baseline on validation. Twelve films: a rough check, not a localisation score.")


def add_to_card(folder: Path) -> None:
    """Put the stored side check into ``card.md`` (a section, replaced if present) and ``card.json``
    (``"side_agreement"``) of ``folder``; nothing without ``side_agreement.json`` or a card. The make_card
    commands call it too, so a regenerated card keeps the section."""
    folder = Path(folder)
    line = summary(folder)
    md_path, json_path = folder / "card.md", folder / "card.json"
    if line is None or not md_path.exists() or not json_path.exists():
        return
    res = json.loads((folder / FILE_NAME).read_text(encoding="utf-8"))
    section = [CARD_HEADING, "", line, "",
               METHOD, "",
               f"`{res['command']}`", "", "```", format_result(res), "```", ""]
    md = md_path.read_text(encoding="utf-8")
    if CARD_HEADING in md:
        head, rest = md.split(CARD_HEADING, 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        md = head.rstrip("\n") + "\n\n" + tail.lstrip("\n")
    md = md.rstrip("\n") + "\n\n" + "\n".join(section)
    card = json.loads(json_path.read_text(encoding="utf-8"))
    card["side_agreement"] = {"summary": line, "verdict": res.get("verdict"), "command": res["command"],
                              "file": FILE_NAME}
    write_text_atomic(md_path, md)
    write_text_atomic(json_path, json.dumps(card, indent=1, ensure_ascii=False) + "\n")


def summary(folder: Path) -> str | None:
    """One line for cards and the app ("… favoured the named lung on 5 of 12 …"), or ``None`` without a file."""
    try:
        res = json.loads((Path(folder) / FILE_NAME).read_text(encoding="utf-8"))
        c, n = res["comparisons"][0], len(res["cases"])
        hits = sum(r["agreement"] for r in res["cases"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    verdict = ("beats" if c["verdict"] == "better" else "is not better than" if c["verdict"] == "not better"
               else "is below")
    return (f"Side check: on {n} validation films whose notes name one lung, the map was higher over that lung on "
            f"{hits:g} of {n} (side agreement {c['engine']['value']:.2f} [{c['engine']['low']:.2f}, "
            f"{c['engine']['high']:.2f}]); it {verdict} {c['baseline']} ({c['reference']['value']:.2f}).")
