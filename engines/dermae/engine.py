"""Lucent engine: DERMAE dermoscopy classification (melanoma / seborrheic keratosis / nevus) + Grad-CAM.

Qt-free; torch is imported lazily inside the run steps so that importing this module (and the
registry) stays cheap. The shipped network is the distilled **student** CNN (``model.safetensors``); the ViT
teacher (``teacher.safetensors``) is shipped for reference and evaluation only.

Input: a 2D colour (RGB/RGBA) photograph, modality "XC" or "OT". Grey images and 3D volumes are refused with
an :class:`EngineError`. The photo is squashed to ``S × S`` (S = 64 for the demo weights) as in training.

Saliency overlay geometry
-------------------------
Grad-CAM is taken on the student's last stage, an ``n × n`` grid (n = S/8). The map is squashed back over the
whole photo: map pixel (u, v) covers ``W/n × H/n`` photo pixels, so its affine is
``volume.affine @ map_to_image_matrix((n, n), (H, W))`` — the pixel-centre mapping of
:func:`engines.common.geometry.map_to_image_matrix` (shared by the engines).

When the photo came from a folder laid out like ../shared/data/dermoscopy (``images/ISIC_x.jpg`` beside
``masks/ISIC_x_segmentation.png``), the ground-truth lesion mask is added as a comparison layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step, finite_or_raise
from engines.common.geometry import map_to_image_matrix
from engines.common.image import unit_map
from engines.errors import EngineError
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "dermae"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
CLASS_NAMES: tuple[str, ...] = ("melanoma", "seborrheic keratosis", "nevus")
LEGEND = "Grad-CAM of the student CNN (last conv stage), min-max normalised"
MIN_SIDE = 32


class DermaeEngine(ShippedWeightsEngine):
    """Class probabilities for a dermoscopy photo + a Grad-CAM saliency overlay (+ lesion mask when found).

    Args:
        weights: a student ``.safetensors`` file (default: the shipped demo weights); loaded with ``strict=True``,
            its config read from the file's metadata.
    """

    id: ClassVar[str] = "dermae"
    title: ClassVar[str] = "DERMAE dermoscopy (distilled student)"
    paper: ClassVar[str] = ("DERMAE: dermoscopy classification under class imbalance with class-conditional latent "
                            "diffusion balancing, an MAE-pretrained ViT teacher and knowledge distillation "
                            "(seed 001; DESIGN §3.4).")
    modalities: ClassVar[tuple[str, ...]] = ("XC", "OT")
    dims: ClassVar[tuple[int, ...]] = (2,)
    takes_query: ClassVar[bool] = False
    outputs = ("scores", "saliency", "mask")
    labels: ClassVar[tuple[str, ...]] = CLASS_NAMES

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__(weights)

    def applies_to(self, volume: Volume) -> bool:
        """Colour photos only: a grey radiograph saved as PNG is also "OT", and the student cannot read it."""
        return bool(volume.rgb) and super().applies_to(volume)

    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.dermae.weights_io import load_model

        try:
            return load_model(path, "student", expected_sha256=expected_sha256)
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"Cannot load {path} as DERMAE student weights: {exc}") from exc

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def check_input(self, volume: Volume) -> None:
        """Base checks, then the photo checks of :meth:`photo` (before any weights are loaded)."""
        super().check_input(volume)
        self.photo(volume)

    def photo(self, volume: Volume) -> np.ndarray:
        """The volume's photo as ``uint8 [H, W, 3]``.

        Raises:
            EngineError: not colour, too small, NaN/Inf or constant.
        """
        if not volume.rgb or volume.array.ndim != 3:
            raise EngineError(f"{self.title} needs a colour (RGB) dermoscopy photo; this image is grey "
                              f"(array shape {tuple(volume.array.shape)}).")
        a = volume.array[..., :3]
        if a.dtype != np.uint8:
            finite_or_raise(a)
            a = a.astype(np.float64)
            if a.max() <= 1.0:
                a = a * 255.0
            a = np.clip(np.round(a), 0, 255).astype(np.uint8)
        if min(a.shape[:2]) < MIN_SIDE:
            raise EngineError(f"The photo is too small ({a.shape[1]}×{a.shape[0]} px); {self.title} needs at "
                              f"least {MIN_SIDE} px per side.")
        if int(a.max()) == int(a.min()):
            raise EngineError("The photo is constant (one colour); nothing to analyse.")
        return np.ascontiguousarray(a)

    def preprocess(self, state: RunState) -> tuple[np.ndarray, Any]:
        """(photo ``uint8 [H, W, 3]``, network input ``[1, 3, S, S]``)."""
        from engines.dermae.data import resize_rgb, to_tensor

        photo = self.photo(state.volume)
        return photo, to_tensor(resize_rgb(photo, int(state.model.image_size))[None])

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[Any, Any]:
        """(logits ``[1, 3]``, Grad-CAM ``[1, n, n]``) on the CPU."""
        from engines.dermae.model import grad_cam

        step(0.0, "running the network (Grad-CAM)")
        logits, cam = grad_cam(state.model.to(device), state.inputs[1].to(device))
        return logits.float().cpu(), cam.float().cpu()

    def postprocess(self, state: RunState) -> EngineResult:
        """Class probabilities + Grad-CAM overlay (and the lesion mask when found); see the module docstring."""
        import torch

        volume, photo = state.volume, state.inputs[0]
        logits, cam = state.outputs
        probs = torch.softmax(logits.double(), 1)[0].numpy()
        scores = {name: float(p) for name, p in zip(CLASS_NAMES, probs, strict=True)}
        top = int(np.argmax(probs))
        norm, lo, hi = unit_map(cam[0].numpy())
        notes: list[str] = []
        if hi <= lo:
            notes.append("Grad-CAM is zero everywhere for this photo (no positive evidence map).")
        h, w = photo.shape[:2]
        affine = volume.affine @ map_to_image_matrix(norm.shape, (h, w))
        ov = Volume(norm, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                    metadata={"class": CLASS_NAMES[top], "probability": float(probs[top]),
                              "raw_cam_range": (lo, hi), "method": "Grad-CAM", "source": self.id})
        overlays = [Overlay(name=f"Grad-CAM · {CLASS_NAMES[top]}", kind="saliency", volume=ov,
                            value_range=(0.0, 1.0), colormap="inferno",
                            legend=f"{CLASS_NAMES[top]}: {LEGEND} (p = {probs[top]:.2f})", units="a.u.")]
        mask = self._find_mask(volume, (h, w))
        if mask is not None:
            mv = Volume(mask, affine=volume.affine.copy(), modality=volume.modality,
                        spacing_known=volume.spacing_known,
                        metadata={"source": "ISIC-2017 ground truth", "display": "outline"})
            overlays.append(Overlay(name="lesion mask (ground truth)", kind="mask", volume=mv, value_range=(0, 1),
                                    colormap="labels", legend="ISIC-2017 lesion segmentation (comparison layer)",
                                    label_names={1: "lesion"}))
        notes.append("Research demo weights, not for clinical use; trained on 450 ISIC-2017 images at 64×64 px.")
        return EngineResult(overlays=overlays, scores=scores, notes=notes)

    @staticmethod
    def _find_mask(volume: Volume, shape: tuple[int, int]) -> np.ndarray | None:
        """The ISIC lesion mask beside the photo (``../masks/<id>_segmentation.png``), as uint8 0/1, or None."""
        src = volume.metadata.get("source") if isinstance(volume.metadata, dict) else None
        if not src:
            return None
        p = Path(str(src))
        cand = p.parent.parent / "masks" / f"{p.stem}_segmentation.png"
        if not cand.is_file():
            return None
        try:
            from PIL import Image

            with Image.open(cand) as im:
                m = (np.asarray(im.convert("L")) > 127).astype(np.uint8)
        except (OSError, ValueError):
            return None
        return m if m.shape == shape else None


ENGINE_CLASS = DermaeEngine  # found by engines.registry

__all__ = ["DermaeEngine", "map_to_image_matrix"]
