"""What the five engines share (Qt-free; numpy, torch and safetensors only).

Each engine package imports from here, from :mod:`engines.base` / :mod:`engines.weights` / :mod:`engines.device`
and from :mod:`viewer.model` — never from another engine (an import-linter contract checks it).

* :mod:`.metrics` — ROC AUC, average precision, Dice, balanced accuracy (tested on hand-computed cases).
* :mod:`.geometry` — the affine of a coarse output grid on its input image/volume (pixel centres aligned).
* :mod:`.image` — grey conversion, robust normalisation, square resizing, min-max maps.
* :mod:`.text` — the offline sentence encoder and tokenizers read from vocabulary files (no network).
* :mod:`.config` — model configs as JSON-able dicts (the weights files carry them in their metadata).
* :mod:`.cxr` — the chest-radiograph data set helpers (labels, rows, boxes, split) used by two engines.
* :mod:`.train`, :mod:`.distributed`, :mod:`.evaluate`, :mod:`.card` — the scaffold of the train, evaluate and
  make_card commands.
"""
