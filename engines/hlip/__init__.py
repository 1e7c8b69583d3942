"""hlip: HLIP 3D study-level language–image model (arXiv 2505.21862) — the query engine for 3D studies.

Importing this package is cheap (no torch, no sentence encoder, no viewer): the registry finds ``ENGINE_CLASS``
in ``engine.py``; both load when the engine first runs.
"""
