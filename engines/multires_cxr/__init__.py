"""multires_cxr: multi-resolution weakly supervised CXR diagnosis with LSE-LBA pooling (Yao et al. 2018).

Importing this package is cheap (no torch): torch is imported when the engine runs.
"""

from engines.multires_cxr.engine import MultiResCXREngine

ENGINE_CLASS = MultiResCXREngine

__all__ = ["ENGINE_CLASS", "MultiResCXREngine"]
