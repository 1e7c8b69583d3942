"""hlip: HLIP 3D study-level language–image model (arXiv 2505.21862) — the query engine for 3D studies.

Importing this package is cheap (no torch, no sentence encoder): both load when the engine first runs.
"""

from engines.hlip.engine import HLIPEngine

ENGINE_CLASS = HLIPEngine

__all__ = ["ENGINE_CLASS", "HLIPEngine"]
