"""radzero: RadZero free-text grounding for chest radiographs (arXiv 2504.07416) — the engine behind the query bar.

Importing this package is cheap (no torch, no sentence encoder, no viewer): the registry finds ``ENGINE_CLASS``
in ``engine.py``; both load when the engine first runs.
"""
