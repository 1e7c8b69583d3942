"""Qt-free AI engines: one sub-package per paper, plus the shared API (:mod:`engines.base`)."""
