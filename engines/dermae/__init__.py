"""dermae: dermoscopy classification under class imbalance (DESIGN §3.4, seed 001).

Class-conditional latent diffusion balances the minority classes, an MAE-pretrained ViT teacher is fine-tuned
and distilled into a small CNN student. Lucent ships a 128 px student trained with a class-balanced loss (not
distilled: the demo teacher is near chance), calibrated on validation, with a fixed-scale Grad-CAM map inside the
estimated lesion region (issue 18).

Importing this package is cheap (no torch, no viewer): the registry finds ``ENGINE_CLASS`` in ``engine.py``,
and training/evaluation import only what they use (torch + numpy + safetensors).
"""
