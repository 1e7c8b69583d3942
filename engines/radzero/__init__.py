"""radzero: RadZero free-text grounding for chest radiographs (arXiv 2504.07416) — the engine behind the query bar.

Importing this package is cheap (no torch, no sentence encoder): both load when the engine first runs.
"""

from engines.radzero.engine import RadZeroEngine

ENGINE_CLASS = RadZeroEngine

__all__ = ["ENGINE_CLASS", "RadZeroEngine"]
