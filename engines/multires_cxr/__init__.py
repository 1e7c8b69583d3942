"""multires_cxr: multi-resolution weakly supervised CXR diagnosis with LSE-LBA pooling (Yao et al. 2018).

Importing this package is cheap (no torch, no viewer): the registry finds ``ENGINE_CLASS`` in ``engine.py``,
and training/evaluation import only what they use (torch + numpy + safetensors).
"""
