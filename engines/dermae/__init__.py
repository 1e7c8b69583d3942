"""dermae: dermoscopy classification under class imbalance (DESIGN §3.4, seed 001).

Class-conditional latent diffusion balances the minority classes, an MAE-pretrained ViT teacher is fine-tuned
and distilled into a small CNN student; Lucent ships the student (class probabilities + Grad-CAM overlay).

Importing this package is cheap (no torch, no viewer): the registry finds ``ENGINE_CLASS`` in ``engine.py``,
and training/evaluation import only what they use (torch + numpy + safetensors).
"""
