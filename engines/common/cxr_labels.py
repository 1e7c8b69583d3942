"""The 14 NIH ChestX-ray14 findings and a rule-based mapper from this data set's findings/notes onto them.

The shared chest X-ray set (a COVID-19 image collection) has a ``finding`` column (an aetiology such as
COVID-19, Streptococcus, No Finding) and free-text ``clinical_notes``. Neither is an NIH label, so
:func:`map_labels` applies these documented rules, in this order, and leaves everything else *unknown*
(``-1``, masked out of the loss and of the metrics):

1. ``finding`` = "No Finding" → all 14 labels are 0 (a normal radiograph). Nothing else is read.
2. ``finding`` names a pneumonia (COVID-19, a bacterial/viral/fungal pathogen, "Pneumonia", lipoid
   pneumonia; see :data:`PNEUMONIA_FINDINGS`) → Pneumonia = 1. The upstream collection files these under
   "Pneumonia/…" (e.g. Pneumonia/Viral/COVID-19). ARDS alone is *not* mapped to Pneumonia.
3. Notes, sentence by sentence: a keyword of a label (:data:`NOTE_KEYWORDS`, e.g. "consolidat" →
   Consolidation, "effusion"/"hydrothorax" → Effusion, "edema"/"oedema" → Edema, "hiatus hernia" → Hernia)
   sets that label to 1, unless a negation cue ("no", "without", "negative for", "free of", "absence of")
   precedes it within :data:`NEGATION_WINDOW` words of the same sentence, which sets it to 0
   ("No pleural effusion" → Effusion = 0). A positive mention wins over a negated one.
   "Pneumonia" is never taken from notes (the notes often mention it as history or suspicion).
4. Notes that call the radiograph normal (:data:`NORMAL_PHRASES`, e.g. "no significant findings",
   "lungs clear", "unremarkable", "within the limits of the norm") and carry no positive keyword → all 14
   labels 0, overriding rule 2 (the radiograph, not the patient, is being labelled). Words of an abnormality
   that map to no label (:data:`ABNORMAL_WORDS`: "opacity", "ground-glass"…) also block this rule.

Known noise: notes sometimes describe a CT or another radiograph of the same patient; keywords then label
the wrong image. The label space is narrow: most images are COVID-19, so Pneumonia is positive for most.
"""

from __future__ import annotations

import re

import numpy as np

LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
NUM_CLASSES = len(LABELS)
UNKNOWN = -1.0

PNEUMONIA_FINDINGS: tuple[str, ...] = (
    "covid-19", "pneumonia", "streptococcus", "klebsiella", "mycoplasma", "legionella", "e.coli",
    "pneumocystis", "varicella", "influenza", "lipoid", "sars", "mers", "chlamydophila", "staphylococcus",
    "aspergillosis", "nocardia",
)

#: label → regular expressions (matched on lower-case text at word starts).
NOTE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"atelecta\w*", r"(?:lobar |lobe |focal )?collapse\b"),
    "Cardiomegaly": (r"cardiomegaly", r"heart is (?:\w+ )?enlarged", r"enlarged (?:heart|cardiac)",
                     r"cardiac enlargement"),
    "Effusion": (r"effusions?\b", r"hydrothorax"),
    "Infiltration": (r"infiltrat\w*",),
    "Mass": (r"mass(?:es)?\b(?!-like)",),
    "Nodule": (r"nodules?\b", r"nodular\b"),
    "Pneumothorax": (r"pneumothora(?:x|ces)",),
    "Consolidation": (r"consolidat\w*",),
    "Edema": (r"o?edema\b",),
    "Emphysema": (r"emphysema\w*",),
    "Fibrosis": (r"fibrosis", r"fibrotic"),
    "Pleural_Thickening": (r"pleural thickening",),
    "Hernia": (r"hernia\b",),
}
NEGATION_CUES: tuple[str, ...] = ("no", "without", "negative for", "free of", "absence of", "not")
NEGATION_WINDOW = 6
NORMAL_PHRASES: tuple[str, ...] = (
    "no significant findings", "lungs clear", "lungs are clear", "unremarkable", "within the limits of the norm",
    "no thoracic abnormalit", "cxr: normal", "normal chest", "lungs and pleural spaces are clear",
)
#: words of an abnormality that map to no label but stop rule 4 (e.g. "in retrospect, a subtle ground-glass…").
ABNORMAL_WORDS: tuple[str, ...] = ("opacit", "opacification", "ground-glass", "ground glass", "reticular")

_SENTENCE = re.compile(r"(?<=[.;:!?])\s+|\n")
_WORD = re.compile(r"[a-z][a-z0-9\-]*")


def _mentions(sentence: str, pattern: str) -> list[bool]:
    """For each match of ``pattern`` in ``sentence`` (lower case): True when negated, False when positive."""
    out = []
    for m in re.finditer(r"\b" + pattern, sentence):
        before = _WORD.findall(sentence[: m.start()])[-NEGATION_WINDOW:]
        text_before = " ".join(before)
        negated = any(re.search(r"\b" + cue + r"\b", text_before) for cue in NEGATION_CUES)
        out.append(negated)
    return out


def notes_labels(notes: str, keywords: dict[str, tuple[str, ...]] | None = None) -> dict[str, float]:
    """Labels read from free-text notes (rule 3): label → 1.0 (mentioned) or 0.0 (only negated).

    ``keywords``: label → regular expressions (default :data:`NOTE_KEYWORDS`).
    """
    text = notes.lower()
    found: dict[str, float] = {}
    for sentence in _SENTENCE.split(text):
        for label, patterns in (NOTE_KEYWORDS if keywords is None else keywords).items():
            for pattern in patterns:
                for negated in _mentions(sentence, pattern):
                    value = 0.0 if negated else 1.0
                    found[label] = max(found.get(label, 0.0), value)
    return found


def says_normal(notes: str) -> bool:
    """Whether the notes call the radiograph normal (rule 4's phrase test; no keyword test)."""
    text = notes.lower()
    return any(p in text for p in NORMAL_PHRASES)


def map_labels(finding: str, notes: str) -> np.ndarray:
    """Map one image's ``finding`` and ``clinical_notes`` onto the 14 labels.

    Returns:
        float32 array ``[14]`` in :data:`LABELS` order: 1 positive, 0 negative, -1 unknown (masked).
    """
    y = np.full(NUM_CLASSES, UNKNOWN, dtype=np.float32)
    f = finding.strip().lower()
    if f == "no finding":
        y[:] = 0.0
        return y
    if any(p in f for p in PNEUMONIA_FINDINGS):
        y[LABELS.index("Pneumonia")] = 1.0
    from_notes = notes_labels(notes or "")
    abnormal = any(v == 1.0 for v in from_notes.values()) or any(w in (notes or "").lower() for w in ABNORMAL_WORDS)
    if says_normal(notes or "") and not abnormal:
        y[:] = 0.0
        return y
    for label, value in from_notes.items():
        y[LABELS.index(label)] = value
    return y
