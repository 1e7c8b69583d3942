"""Text side of RadZero: a rule-based sentence splitter/normaliser, prompts, and the offline sentence encoder.

The paper extracts *minimal semantic sentences* from MIMIC-CXR reports with a large language model. Here a
**rule-based sentence splitter/normaliser** does it (no LLM offline), from each image's ``finding`` and
``clinical_notes`` (``../shared/data/cxr/metadata.csv``), by these rules (:func:`minimal_sentences`):

1. The ``finding`` column gives one sentence: "No Finding" → "There is no abnormality."; otherwise
   "There is {finding} pneumonia." (e.g. "There is covid-19 pneumonia."), ARDS → "There is acute
   respiratory distress syndrome.".
2. The rule-based labels of :func:`engines.common.cxr_labels.map_labels` (reused, not copied) give
   "There is {finding}." for positives and "There is no {finding}." for negatives (the paper's prompt form).
3. The notes are split into sentences (``.``, ``;``, ``!``, ``?``, newlines), then clauses at ", and"/"; "
   and " with "; a clause is kept only when it describes the radiograph (:data:`IMAGING_WORDS`, e.g.
   opacity, consolidation, effusion, lobe, zone, unremarkable) and does not describe another examination
   (CT, ultrasound) or history (age, fever, travel, days…; :data:`DROP_WORDS`). Kept clauses are normalised:
   lower case, the replacement character and figure tags ("(A)") removed, abbreviations spelled out
   (GGO → ground-glass opacity, CXR → chest radiograph…), numbers/percentages dropped, whitespace collapsed,
   at most :data:`MAX_WORDS` words, capitalised, one final full stop.
4. Duplicates are removed (order kept).

Prompts (:func:`prompt`, :func:`negation`): "There is {finding}." and "There is no {finding}.".

The demo's sentence encoder (all-MiniLM-L6-v2, offline) and the tokenizers of the paper's MPNet text tower live
in :mod:`engines.common.text`.
"""

from __future__ import annotations

import re

MAX_WORDS = 24

IMAGING_WORDS: tuple[str, ...] = (
    "opacit", "opacific", "consolidat", "effusion", "ground-glass", "ground glass", "infiltrat", "atelecta",
    "nodul", "pneumothora", "edema", "oedema", "cardiomegaly", "airspace", "air space", "interstitial",
    "reticul", "hazy", "haziness", "lobe", "zone", "lung", "pleural", "hilar", "perihilar", "bilateral",
    "unremarkable", "clear", "normal", "thoracic abnormalit", "shadow", "patchy", "diffuse", "cavit",
    "mass", "collapse", "markings", "heart", "cardiac", "costophrenic", "diaphragm", "peripheral",
    "basal", "apical", "silhouette",
)
DROP_WORDS: tuple[str, ...] = (
    " ct", "ct ", "computed tomography", "ultrasound", "year-old", "year old", "years old", "fever", "cough",
    "travel", "admitted", "admission", "days", "history", "swab", "rt-pcr", "pcr", "saturation", "laboratory",
    "discharged", "symptom", "temperature", "treated", "antibiotic", "patient was", "presented", "icu",
    "intubat", "sputum", "blood", "tested", "rna", "virus was", "spo2", "disease", "renal", "ng/ml",
    "tube", "catheter", "line ",
)
ABBREVIATIONS: dict[str, str] = {
    r"\bggos?\b": "ground-glass opacity", r"\bcxrs?\b": "chest radiograph", r"\brll\b": "right lower lobe",
    r"\blll\b": "left lower lobe", r"\brul\b": "right upper lobe", r"\blul\b": "left upper lobe",
    r"\brml\b": "right middle lobe", r"\bett\b": "endotracheal tube", r"\bngt\b": "nasogastric tube",
}

_SENT = re.compile(r"(?<=[.;!?])\s+|\n+")
_CLAUSE = re.compile(r";\s+|,\s+and\s+|\s+with\s+")


def finding_sentence(finding: str) -> str:
    """Rule 1: one sentence from the ``finding`` column."""
    f = (finding or "").strip().lower()
    if not f:
        return ""
    if f == "no finding":
        return "There is no abnormality."
    parts = [p.strip() for p in f.split(",") if p.strip()]
    out = []
    for p in parts:
        if p == "ards":
            out.append("acute respiratory distress syndrome")
        elif "pneumonia" in p:
            out.append(p)
        else:
            out.append(f"{p} pneumonia")
    return "There is " + " and ".join(out) + "."


def label_sentences(finding: str, notes: str) -> list[str]:
    """Rule 2: "There is {x}." / "There is no {x}." from the rule-based 14-label mapper (multires_cxr)."""
    from engines.common.cxr_labels import LABELS, map_labels

    y = map_labels(finding or "", notes or "")
    out = []
    for name, v in zip(LABELS, y, strict=True):
        if v == 1:
            out.append(prompt(label_phrase(name)))
        elif v == 0:
            out.append(negation(label_phrase(name)))
    return out


def label_phrase(label: str) -> str:
    """NIH label → the phrase used in prompts ("Pleural_Thickening" → "pleural thickening")."""
    return {"Effusion": "pleural effusion", "Mass": "a mass", "Nodule": "a nodule"}.get(
        label, label.replace("_", " ").lower())


def expand_abbreviations(text: str) -> str:
    """Lower-case ``text`` with :data:`ABBREVIATIONS` spelled out."""
    s = text.lower()
    for pat, rep in ABBREVIATIONS.items():
        s = re.sub(pat, rep, s)
    return s


def normalise_clause(clause: str) -> str:
    """Rule 3's normaliser for one kept clause ("" when nothing is left)."""
    s = clause.replace("\ufffd", "").lower()
    s = re.sub(r"\(\s*[a-z]\s*\)", " ", s)  # figure tags "(A)"
    s = re.sub(r"^\s*(?:ap|pa)?\s*(?:supine|portable|erect)?\s*(?:chest x-ray|cxr|chest radiograph)\s*:\s*", "", s)
    s = expand_abbreviations(s)
    s = re.sub(r"\d+(?:[.,]\d+)?\s*(?:%|mm|cm)?", " ", s)
    s = re.sub(r"[^a-z\- ,/']", " ", s)
    s = re.sub(r"\s+", " ", s).strip(" ,-/")
    words = s.split()
    if len(words) < 2:
        return ""
    s = " ".join(words[:MAX_WORDS])
    return s[0].upper() + s[1:] + "."


def note_sentences(notes: str) -> list[str]:
    """Rule 3: minimal sentences about the radiograph from free-text notes."""
    out = []
    for sent in _SENT.split(notes or ""):
        for clause in _CLAUSE.split(sent):
            low = " " + expand_abbreviations(clause) + " "
            if not any(w in low for w in IMAGING_WORDS) or any(w in low for w in DROP_WORDS):
                continue
            s = normalise_clause(clause)
            if s:
                out.append(s)
    return out


def minimal_sentences(finding: str, notes: str) -> list[str]:
    """All minimal sentences of one image (rules 1–4), at least one (the finding sentence)."""
    cand = [finding_sentence(finding), *label_sentences(finding, notes), *note_sentences(notes)]
    seen: set[str] = set()
    out = []
    for s in cand:
        if s and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def prompt(finding: str) -> str:
    """Positive class prompt "There is {finding}."."""
    return f"There is {finding.strip().rstrip('.')}."


def negation(finding: str) -> str:
    """Negative class prompt "There is no {finding}."."""
    return f"There is no {finding.strip().rstrip('.')}."


def query_prompt(query: str) -> tuple[str, str | None]:
    """The user's typed query → (prompt, its negation or None).

    A bare finding ("left lower lobe consolidation") becomes "There is left lower lobe consolidation." (the form
    the model saw in training); a typed sentence (starting "There is/are" or ending with a full stop) is kept
    as typed, and negated only when it starts "There is"/"There are" without "no".
    """
    q = " ".join(query.split())
    low = q.lower()
    m = re.match(r"^there (is|are) (?!no\b)(.+)$", q, flags=re.IGNORECASE)
    if m:
        body = m.group(2).rstrip(".")
        return (q if q.endswith(".") else q + "."), f"There {m.group(1).lower()} no {body}."
    if low.startswith("there ") or q.endswith("."):
        return q, None
    return prompt(q), negation(q)
