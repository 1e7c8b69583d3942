"""Lucent engine: DERMAE dermoscopy classification (melanoma / seborrheic keratosis / nevus) + Grad-CAM.

Qt-free; torch is imported lazily inside the run steps so that importing this module (and the
registry) stays cheap. The shipped network is the **student** CNN (``model.safetensors``); the ViT
teacher (``teacher.safetensors``) is shipped for reference and evaluation only.

Input: a 2D colour (RGB/RGBA) photograph, modality "XC" or "OT". Grey images and 3D volumes are refused with
an :class:`EngineError`. The photo is squashed to ``S × S`` (S = 128 for the demo weights) as in training.

Scores and map scale
--------------------
The logits are averaged over the 8 dihedral views of the photo (4 × 90° rotations × horizontal flip; test-time
augmentation, :func:`engines.dermae.tta.tta_logits`, the same function the evaluation uses), so turning or
mirroring the photo does not change the scores. Scores are ``softmax(logits / T)`` with the temperature ``T``
fitted on the validation split (on those averaged logits) and stored in ``calibration.json`` beside the weights
(:func:`weights_io.read_calibration`; other weights files: ``T = 1``). A ``calibration.json`` that says
``"tta": false`` (fitted on single-view logits, before TTA) switches TTA off so that ``T`` matches its logits.
Grad-CAM is taken on the original view only, for the top class of the averaged logits, on the student's last
stage, an ``n × n`` grid (n = S/8); × n² / T it is the top class's local logit evidence. The overlay shows it on a fixed scale — 1.0 = ``map_scale_logit_units`` (the 99th percentile of
the training images' evidence), clipped to [0, 1] — inside the lesion region estimated by
:func:`engines.dermae.region.lesion_region`, so the surrounding skin is never lit; it carries the display
threshold ``map_threshold``. No per-image min-max: maps of two photos compare.

Saliency overlay geometry
-------------------------
The map is computed on the network's ``S × S`` grid and squashed back over the whole photo: map pixel (u, v)
covers ``W/S × H/S`` photo pixels, so its affine is ``volume.affine @ map_to_image_matrix((S, S), (H, W))`` — the
pixel-centre mapping of :func:`engines.common.geometry.map_to_image_matrix` (shared by the engines).

When the photo came from a folder laid out like ../shared/data/dermoscopy (``images/ISIC_x.jpg`` beside
``masks/ISIC_x_segmentation.png``), the ground-truth lesion mask is added as a comparison layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step, finite_or_raise
from engines.common.geometry import map_to_image_matrix
from engines.errors import EngineError
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "dermae"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
CLASS_NAMES: tuple[str, ...] = ("melanoma", "seborrheic keratosis", "nevus")
LEGEND = "Grad-CAM evidence of the student CNN inside the lesion region, fixed scale"
#: map scale (logit units) and display threshold for weights without a calibration.json of their own
DEFAULT_MAP_SCALE, DEFAULT_MAP_THRESHOLD = 3.0, 0.4
MIN_SIDE = 32


class DermaeEngine(ShippedWeightsEngine):
    """Class probabilities for a dermoscopy photo + a Grad-CAM saliency overlay (+ lesion mask when found).

    Args:
        weights: a student ``.safetensors`` file (default: the shipped demo weights); loaded with ``strict=True``,
            its config read from the file's metadata.
    """

    id: ClassVar[str] = "dermae"
    title: ClassVar[str] = "DERMAE dermoscopy (class-balanced student CNN)"
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
        #: ``calibration.json`` of the loaded weights (None: uncalibrated, T = 1 and the default map scale)
        self.calibration: dict[str, Any] | None = None

    def applies_to(self, volume: Volume) -> bool:
        """Colour photos only: a grey radiograph saved as PNG is also "OT", and the student cannot read it."""
        return bool(volume.rgb) and super().applies_to(volume)

    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        from engines.dermae.weights_io import load_model, read_calibration

        try:
            model = load_model(path, "student", expected_sha256=expected_sha256)
            self.calibration = read_calibration(path)
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"Cannot load {path} as DERMAE student weights: {exc}") from exc
        return model

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

    def preprocess(self, state: RunState) -> tuple[np.ndarray, np.ndarray, Any]:
        """(photo ``uint8 [H, W, 3]``, photo at the network size ``uint8 [S, S, 3]``, input ``[1, 3, S, S]``)."""
        from engines.dermae.data import resize_rgb, to_tensor

        photo = self.photo(state.volume)
        small = resize_rgb(photo, int(state.model.image_size))
        return photo, small, to_tensor(small[None])

    def uses_tta(self) -> bool:
        """Average the logits over the 8 dihedral views: yes, unless the weights' ``calibration.json`` was fitted on
        single-view logits (``"tta": false``, or no ``tta`` key: written before TTA); uncalibrated weights: yes."""
        return bool(self.calibration.get("tta", False)) if self.calibration else True

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[Any, Any]:
        """(logits ``[1, 3]``: the 8-view mean under TTA, Grad-CAM ``[1, n, n]`` of their top class on the original
        view) on the CPU."""
        from engines.dermae.model import grad_cam
        from engines.dermae.tta import tta_logits

        model, x = state.model.to(device), state.inputs[2].to(device)
        if self.uses_tta():
            step(0.0, "running the network on 8 rotated/flipped views")
            logits = tta_logits(model, x)
            step(0.5, "Grad-CAM on the original view")
            _, cam = grad_cam(model, x, logits.argmax(1))
        else:
            step(0.0, "running the network (Grad-CAM)")
            logits, cam = grad_cam(model, x)
        return logits.float().cpu(), cam.float().cpu()

    def postprocess(self, state: RunState) -> EngineResult:
        """Calibrated class probabilities + the fixed-scale map (and the lesion mask when found); see the module
        docstring."""
        import torch

        from engines.dermae.region import lesion_map

        volume, photo, small = state.volume, state.inputs[0], state.inputs[1]
        logits, cam = state.outputs
        cal = self.calibration or {}
        t = float(cal.get("temperature") or 1.0)
        scale = float(cal.get("map_scale_logit_units") or DEFAULT_MAP_SCALE)
        threshold = float(cal.get("map_threshold") or DEFAULT_MAP_THRESHOLD)
        probs = torch.softmax(logits.double() / t, 1)[0].numpy()
        scores = {name: float(p) for name, p in zip(CLASS_NAMES, probs, strict=True)}
        top = int(np.argmax(probs))
        evidence = cam.double().numpy() * cam.shape[-1] * cam.shape[-2] / t
        shown = np.clip(lesion_map(evidence, small[None], scale)[0], 0.0, 1.0).astype(np.float32)
        notes: list[str] = []
        if not cal:
            notes.append("These weights have no calibration.json of their own: scores are uncalibrated (T = 1) and "
                         f"the map uses the default scale ({DEFAULT_MAP_SCALE} logit units).")
        if float(shown.max()) < threshold:
            notes.append(f"No map value reaches the display threshold {threshold:.2f}: little local evidence for "
                         f"{CLASS_NAMES[top]}.")
        h, w = photo.shape[:2]
        affine = volume.affine @ map_to_image_matrix(shown.shape, (h, w))
        ov = Volume(shown, affine=affine, modality=volume.modality, spacing_known=volume.spacing_known,
                    metadata={"class": CLASS_NAMES[top], "probability": float(probs[top]),
                              "scale_logit_units": scale, "temperature": t, "method": "Grad-CAM",
                              "tta_views": 8 if self.uses_tta() else 1,
                              "source": self.id})
        overlays = [Overlay(name=f"Grad-CAM · {CLASS_NAMES[top]}", kind="saliency", volume=ov,
                            value_range=(0.0, 1.0), colormap="inferno", threshold=threshold,
                            legend=(f"{CLASS_NAMES[top]}: {LEGEND} (1 = {scale:.2f} logit units; "
                                    f"p = {probs[top]:.2f})"), units="fixed scale")]
        mask = self._find_mask(volume, (h, w))
        if mask is not None:
            mv = Volume(mask, affine=volume.affine.copy(), modality=volume.modality,
                        spacing_known=volume.spacing_known,
                        metadata={"source": "ISIC-2017 ground truth", "display": "outline"})
            overlays.append(Overlay(name="lesion mask (ground truth)", kind="mask", volume=mv, value_range=(0, 1),
                                    colormap="labels", legend="ISIC-2017 lesion segmentation (comparison layer)",
                                    label_names={1: "lesion"}))
        notes.append("Research demo weights, not for clinical use; trained on 450 ISIC-2017 images at "
                     f"{small.shape[0]}×{small.shape[1]} px on a 2-core CPU. See the model card for the comparison "
                     "with the baseline.")
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
