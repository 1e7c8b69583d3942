"""rasalore: RASALoRE weakly supervised brain-tumour segmentation from slice labels (BMVC 2025).

Importing this package is cheap (no torch): torch is imported when the engine runs.
"""

from engines.rasalore.engine import RASALoREEngine

ENGINE_CLASS = RASALoREEngine

__all__ = ["ENGINE_CLASS", "RASALoREEngine"]
