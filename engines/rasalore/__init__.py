"""rasalore: RASALoRE weakly supervised brain-tumour segmentation from slice labels (BMVC 2025).

Importing this package is cheap (no torch, no viewer): the registry finds ``ENGINE_CLASS`` in ``engine.py``,
and training/evaluation import only what they use (torch + numpy + safetensors).
"""
