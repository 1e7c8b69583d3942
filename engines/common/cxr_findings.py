"""Labels the shared chest X-ray set actually supports (issue 18): its own findings and findings read from its notes.

Candidate classes (numpy only; 1 positive, 0 negative, -1 unknown):

* from the ``finding`` column (known for every image):
  ``COVID-19`` (finding names COVID-19), ``Bacterial pneumonia`` (a bacterial pathogen: Streptococcus,
  Klebsiella, E.Coli, Mycoplasma, Legionella, Chlamydophila, Staphylococcus, Nocardia), ``No finding``.
* from ``clinical_notes`` (known only when the image has notes; a positive, un-negated mention within the
  notes → 1, otherwise 0; negation as in :func:`engines.common.cxr_labels.notes_labels`):
  ``Consolidation``, ``Opacity`` (opacity / opacification / ground-glass), ``Bilateral involvement``
  (bilateral / both lungs), ``Effusion``, ``Nodule``, ``Tubes or lines`` (intubated, endotracheal tube,
  central line, catheter).

:func:`supported` keeps the candidates with at least ``MIN_VALIDATION`` positives *and* negatives on the
validation side of the split; the rest are reported and dropped. Known noise: notes often describe the
patient's history or a CT, so a note label says "the notes mention it", not "a radiologist saw it here".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.common.cxr_labels import notes_labels

BACTERIAL: tuple[str, ...] = ("streptococcus", "klebsiella", "e.coli", "mycoplasma", "legionella", "chlamydophila",
                              "staphylococcus", "nocardia")
FINDING_CLASSES: tuple[str, ...] = ("COVID-19", "Bacterial pneumonia", "No finding")
NOTE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Consolidation": (r"consolidat\w*",),
    "Opacity": (r"opacit\w*", r"opacification", r"ground[- ]glass"),
    "Bilateral involvement": (r"bilateral\w*", r"both lungs"),
    "Effusion": (r"effusions?\b", r"hydrothorax"),
    "Nodule": (r"nodul\w*",),
    "Tubes or lines": (r"intubat\w*", r"endotracheal", r"central (?:venous )?line", r"catheter"),
}
CANDIDATES: tuple[str, ...] = FINDING_CLASSES + tuple(NOTE_KEYWORDS)
#: the classes :func:`supported` keeps on the committed split (engines/multires_cxr/split.json), in output order.
SUPPORTED: tuple[str, ...] = ("COVID-19", "Bacterial pneumonia", "Consolidation", "Opacity", "Bilateral involvement")
#: a class is kept when the validation split has at least this many positives and this many negatives.
MIN_VALIDATION = 8


def finding_labels(finding: str, notes: str) -> np.ndarray:
    """float32 ``[len(CANDIDATES)]`` for one image, in :data:`CANDIDATES` order (1 / 0 / -1 unknown)."""
    f = finding.strip().lower()
    y = np.full(len(CANDIDATES), -1.0, dtype=np.float32)
    y[0] = float("covid" in f)
    y[1] = float(any(b in f for b in BACTERIAL))
    y[2] = float(f == "no finding")
    if notes and notes.strip():
        found = notes_labels(notes, NOTE_KEYWORDS)
        for i, name in enumerate(NOTE_KEYWORDS, start=len(FINDING_CLASSES)):
            y[i] = 1.0 if found.get(name) == 1.0 else 0.0
    return y


def counts(labels: np.ndarray) -> dict[str, dict[str, int]]:
    """Per candidate: positives, negatives, unknown of ``labels`` ``[N, len(CANDIDATES)]``."""
    return {name: {"pos": int((labels[:, i] == 1).sum()), "neg": int((labels[:, i] == 0).sum()),
                   "unknown": int((labels[:, i] < 0).sum())} for i, name in enumerate(CANDIDATES)}


def supported(val_labels: np.ndarray, minimum: int = MIN_VALIDATION) -> tuple[str, ...]:
    """The candidates with ≥ ``minimum`` positives and ≥ ``minimum`` negatives among ``val_labels``."""
    c = counts(val_labels)
    return tuple(n for n in CANDIDATES if c[n]["pos"] >= minimum and c[n]["neg"] >= minimum)


def select(labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns of ``labels`` ``[N, len(CANDIDATES)]`` for ``names``, in that order."""
    return labels[:, [CANDIDATES.index(n) for n in names]]
