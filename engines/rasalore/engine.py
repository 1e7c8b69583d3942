"""Lucent engine: RASALoRE weakly supervised brain-tumour segmentation (BMVC 2025), slice by slice.

Qt-free; torch is imported lazily inside the run steps, so importing this module (and the
registry) stays cheap.

Input: a 3D brain MR volume ``[Z, H, W]`` (axial slices along the array's first axis, as BraTS NIfTI files
load in Lucent), skull-stripped, any intensity scale — FLAIR or T1c (the two modalities the shipped weights
were trained on; T1/T2 run but were not trained). NIfTI files carry no modality, so "OT" volumes are taken
too; CT (by tag, or by Hounsfield-like values) and 2D images are refused with a plain message.

Output, on the INPUT grid (same shape, same affine — no resampling needed):

* mask overlay: uint8, 1 = whole tumour, ``label_names {1: "tumour (whole)"}`` (a LabelsLayer; the mask's
  metadata asks for outline display);
* saliency overlay: the point-activation map (sigmoid of the 32×32 candidate-point MLP) of every slice, resized
  bilinearly onto its brain box; 0 outside the brain;
* score: the largest point activation over all slices ("tumour present").

Each slice with brain (≥ 400 brain pixels) goes through :mod:`engines.rasalore.preprocess` (brain-box crop →
128², gamma 2) and the stage-2 network (rewritten for inference by :func:`~engines.rasalore.model.for_inference`)
in batches of ``BATCH`` slices; progress is reported and ``cancelled()`` polled between batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step, finite_or_raise
from engines.errors import EngineError
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

WEIGHTS_DIR = WEIGHTS_ROOT / "rasalore"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
MIN_SIDE = 64
MIN_SLICES = 8
THRESHOLD = 0.5
BATCH = 4  # slices per forward pass; larger batches are slower per slice on a 2-core CPU (cache)
TRAINED_MODALITIES = ("FLAIR", "T1c")


class RASALoREEngine(ShippedWeightsEngine):
    """Whole-tumour mask + point-activation heatmap for a brain MR volume (RASALoRE stage 2)."""

    id: ClassVar[str] = "rasalore"
    title: ClassVar[str] = "RASALoRE brain tumour"
    paper: ClassVar[str] = ("Sharma B. et al. RASALoRE: Region Aware Spatial Attention with Location-based Random "
                            "Embeddings for weakly supervised anomaly detection in brain MRI scans. BMVC 2025.")
    modalities: ClassVar[tuple[str, ...]] = ("MR", "OT")
    dims: ClassVar[tuple[int, ...]] = (3,)
    takes_query: ClassVar[bool] = False
    outputs = ("mask", "saliency", "scores")

    def __init__(self, weights: str | Path | None = None, threshold: float = THRESHOLD) -> None:
        super().__init__(weights)
        self.threshold = threshold

    def load_weights(self, path: Path, expected_sha256: str | None) -> Any:
        """The stage-2 network rewritten for inference (stage 1 is only needed to reproduce the evaluation)."""
        from engines.rasalore.model import for_inference
        from engines.rasalore.weights_io import load_stage2

        return for_inference(load_stage2(path, expected_sha256))

    # ---- input checks ------------------------------------------------------------------------------
    def check_input(self, volume: Volume) -> None:
        """Base checks (3D, modality, not empty) plus: grey, big enough, finite, not CT-like, has a brain."""
        if volume.modality == "CT":
            raise EngineError(f"{self.title} works on brain MRI (FLAIR or T1c); this image is CT.")
        if volume.is_2d:
            raise EngineError(f"{self.title} needs a 3D brain MRI volume; this image is 2D.")
        super().check_input(volume)
        if volume.rgb:
            raise EngineError(f"{self.title} needs a grey-scale MRI volume, not a colour image.")
        z, h, w = volume.shape3d
        if min(h, w) < MIN_SIDE or z < MIN_SLICES:
            raise EngineError(f"The volume is too small ({w}×{h}×{z}); {self.title} needs axial slices of at "
                              f"least {MIN_SIDE}×{MIN_SIDE} px and at least {MIN_SLICES} slices.")
        finite_or_raise(volume.array, "MRI volume")
        a = volume.array
        if a.dtype.kind in "iu" or a.dtype.kind == "f":
            lo = float(a.min())
            if lo <= -900 and float((a <= -900).mean()) > 0.2:
                raise EngineError(f"This volume looks like CT (values down to {lo:.0f}, as in Hounsfield units); "
                                  f"{self.title} works on brain MRI only.")

    # ---- the run steps (see Engine.run_steps) -----------------------------------------------------------
    def preprocess(self, state: RunState) -> dict[str, Any]:
        """Brain mask, normalised volume, per-slice brain boxes and the 128² crops of the slices with brain."""
        from engines.rasalore.preprocess import brain_mask, crop_slices, normalise_volume, slice_boxes

        vol = state.volume.data3d
        brain = brain_mask(vol)
        try:
            vol01 = normalise_volume(vol, brain)
        except ValueError as exc:
            raise EngineError(f"No brain found in this volume ({exc}); {self.title} needs a skull-stripped "
                              "brain MRI.") from exc
        boxes = slice_boxes(brain)
        todo = np.nonzero(boxes[:, 0] >= 0)[0]
        if len(todo) == 0:
            raise EngineError("No slice of this volume holds enough brain to analyse.")
        crops = crop_slices(vol01, boxes, state.model.config.input_size)  # [N, size, size], one per slice in todo
        return {"shape": vol.shape, "brain": brain, "boxes": boxes, "todo": todo, "crops": crops}

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[np.ndarray, np.ndarray]:
        """Mask probabilities ``[N, size, size]`` and point activations ``[N, g, g]`` of the slices, in batches."""
        import torch

        model, crops = state.model.to(device), state.inputs["crops"]
        cfg, n = model.config, len(crops)
        probs = np.zeros((n, cfg.input_size, cfg.input_size), np.float32)
        acts = np.zeros((n, cfg.grid, cfg.grid), np.float32)
        with torch.inference_mode():
            for a in range(0, n, BATCH):
                step(a / n, f"slice {a + 1} of {n}")
                x = torch.from_numpy(crops[a:a + BATCH])[:, None].to(device, memory_format=torch.channels_last)
                lg, act, _ = model(x)
                probs[a:a + BATCH] = torch.sigmoid(lg[:, 0]).float().cpu().numpy()
                acts[a:a + BATCH] = act.float().cpu().numpy()
        return probs, acts

    def postprocess(self, state: RunState) -> EngineResult:
        """Mask + point-activation overlays on the input grid (see the module docstring)."""
        from engines.rasalore.preprocess import paste_back

        volume, inp = state.volume, state.inputs
        probs, acts = state.outputs
        brain, boxes, shape = inp["brain"], inp["boxes"], inp["shape"]
        prob = paste_back(probs, boxes, shape)
        act_vol = paste_back(acts, boxes, shape)
        slice_scores = acts.reshape(len(acts), -1).max(1)
        mask = ((prob > self.threshold) & brain).astype(np.uint8)
        act_vol *= brain
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        ml = float(mask.sum()) * voxel_ml
        md = {"source": self.id, "display": "outline", "tumour_ml": ml, "threshold": self.threshold}
        mask_vol = Volume(mask, affine=volume.affine.copy(), modality="SEG", metadata=md,
                          spacing_known=volume.spacing_known)
        act_v = Volume(act_vol, affine=volume.affine.copy(), modality=volume.modality,
                       metadata={"source": self.id}, spacing_known=volume.spacing_known)
        overlays = [
            Overlay(name="tumour mask", kind="mask", volume=mask_vol, value_range=(0.0, 1.0), colormap="labels",
                    legend=f"whole tumour (mask probability > {self.threshold}); {ml:.1f} mL",
                    label_names={1: "tumour (whole)"}),
            Overlay(name="point activation", kind="saliency", volume=act_v, value_range=(0.0, 1.0),
                    colormap="inferno", units="probability",
                    legend="RASALoRE point activation (32×32 candidate points per slice, sigmoid)",
                    visible=False),  # secondary: starts hidden so the mask is what the user sees first
        ]
        notes = [f"Trained on {' and '.join(TRAINED_MODALITIES)} of 2 BRATS 2013 patients only; other "
                 "sequences run but were not trained.",
                 f"Whole-tumour volume {ml:.1f} mL over {int((mask.sum((1, 2)) > 0).sum())} slices.",
                 "Research demo weights, not for clinical use."]
        return EngineResult(overlays=overlays, scores={"tumour present": float(slice_scores.max())}, notes=notes)


ENGINE_CLASS = RASALoREEngine  # found by engines.registry

__all__ = ["RASALoREEngine", "DEFAULT_WEIGHTS"]
