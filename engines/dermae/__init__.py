"""dermae: dermoscopy classification under class imbalance (DESIGN §3.4, seed 001).

Class-conditional latent diffusion balances the minority classes, an MAE-pretrained ViT teacher is fine-tuned
and distilled into a small CNN student; Lucent ships the student (class probabilities + Grad-CAM overlay).

Importing this package is cheap (no torch): torch is imported when the engine runs.
"""

from engines.dermae.engine import DermaeEngine

ENGINE_CLASS = DermaeEngine

__all__ = ["ENGINE_CLASS", "DermaeEngine"]
