"""Lucent engine: RASALoRE weakly supervised brain-tumour segmentation (BMVC 2025), slice by slice.

Qt-free; torch is imported lazily inside the run steps, so importing this module (and the
registry) stays cheap.

Input: a 3D brain MR volume ``[Z, H, W]`` (axial slices along the array's first axis, as BraTS NIfTI files
load in Lucent), skull-stripped, any intensity scale — FLAIR or T1c (the two modalities the shipped weights
were trained on; T1/T2 run but were not trained). NIfTI files carry no modality, so "OT" volumes are taken
too; CT (by tag, or by Hounsfield-like values) and 2D images are refused with a plain message.

Output, on the INPUT grid (same shape, same affine — no resampling needed):

* mask overlay: uint8, 1 = whole tumour, ``label_names {1: "tumour (whole)"}`` (a LabelsLayer; the mask's
  metadata asks for outline display): the network's mask probability above the validated threshold, inside the
  (in-plane eroded) brain mask, cleaned by 3D connected components and, for volumes known to be FLAIR (file name
  or series description), refined on the FLAIR intensities (a brain percentile or region growing in the mask's
  box, whichever the validation patient chose)
  (:mod:`engines.rasalore.postprocess`; parameters chosen on the validation patient, ``postprocess.json``);
* saliency overlay: the point-activation map (sigmoid of the 32×32 candidate-point MLP) of every slice, resized
  bilinearly onto its brain box and mapped through a voxel-level calibration fitted on the validation patient, so
  a value reads as "probability that this voxel is tumour" on a fixed 0–1 scale; 0 outside the brain; display
  threshold 0.5 (drawn where tumour is more likely than not). With the shipped weights the calibrated map stays
  near 0.1 (the point activation hardly separates tumour from brain), so it draws almost nothing: honest, not
  broken (see the model card);
* score: "tumour present" = the largest calibrated slice probability (Platt scaling fitted on the validation
  patient's slice labels, :mod:`engines.rasalore.calibrate`).

Each slice with brain (≥ 400 brain pixels) goes through :mod:`engines.rasalore.preprocess` (brain-box crop →
128², gamma 2) and the stage-2 network (rewritten for inference by :func:`~engines.rasalore.model.for_inference`)
in batches of ``BATCH`` slices; progress is reported and ``cancelled()`` polled between batches.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engines.base import WEIGHTS_ROOT, RunState, ShippedWeightsEngine, Step, finite_or_raise
from engines.errors import EngineError
from engines.rasalore.pipeline import BATCH
from engines.rasalore.postprocess import PostParams, describe, read_json
from engines.result import EngineResult, Overlay
from viewer.model.volume import Volume

if TYPE_CHECKING:  # torch-importing module: only at run time, inside the steps
    from engines.rasalore.calibrate import SliceCalibration

WEIGHTS_DIR = WEIGHTS_ROOT / "rasalore"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
MIN_SIDE = 64
MIN_SLICES = 8
THRESHOLD = 0.5  # raw mask threshold when no postprocess.json lies beside the weights
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
        from engines.rasalore.pipeline import prepare_volume

        try:
            brain, boxes, crops, vol01 = prepare_volume(state.volume.data3d, state.model.config.input_size)
        except ValueError as exc:
            raise EngineError(f"No brain found in this volume ({exc}); {self.title} needs a skull-stripped "
                              "brain MRI.") from exc
        return {"brain": brain, "boxes": boxes, "crops": crops, "vol01": vol01}

    def forward(self, state: RunState, device: Any, step: Step) -> tuple[np.ndarray, np.ndarray]:
        """Mask probabilities ``[N, size, size]`` and point activations ``[N, g, g]`` of the slices, in batches."""
        from engines.rasalore.pipeline import forward_crops

        return forward_crops(state.model.to(device), state.inputs["crops"], step, device, BATCH)

    def postprocess(self, state: RunState) -> EngineResult:
        """Cleaned mask + calibrated point-activation overlays on the input grid (see the module docstring)."""
        from engines.rasalore.pipeline import assemble
        from engines.rasalore.postprocess import clean_mask

        volume, inp = state.volume, state.inputs
        seg = assemble(*state.outputs, inp["brain"], inp["boxes"], inp["vol01"])
        flair = is_flair(volume)
        params, cal, calibrated, map_cal, map_threshold = self.settings(flair)
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        mask = clean_mask(seg.prob, seg.brain, params, voxel_ml, seg.vol01).astype(np.uint8)
        # the point activation as P(voxel is whole tumour) (voxel-level calibration on the validation patient),
        # fixed 0–1 scale, 0 outside the brain; shown above the threshold validated there
        from engines.rasalore.calibrate import act_logit

        act_vol = np.where(seg.brain, map_cal.prob(act_logit(seg.act)), 0.0).astype(np.float32)
        slice_p = cal.prob(seg.slice_logit)
        present = float(np.nanmax(slice_p)) if np.isfinite(slice_p).any() else 0.0
        ml = float(mask.sum()) * voxel_ml
        md = {"source": self.id, "display": "outline", "tumour_ml": ml, "threshold": params.threshold,
              "postprocess": params.to_dict(), "sequence": "FLAIR" if flair else "unknown"}
        mask_vol = Volume(mask, affine=volume.affine.copy(), modality="SEG", metadata=md,
                          spacing_known=volume.spacing_known)
        act_v = Volume(act_vol, affine=volume.affine.copy(), modality=volume.modality,
                       metadata={"source": self.id}, spacing_known=volume.spacing_known)
        scale = "calibrated on the validation patient" if calibrated else "uncalibrated"
        overlays = [
            Overlay(name="tumour mask", kind="mask", volume=mask_vol, value_range=(0.0, 1.0), colormap="labels",
                    legend=f"whole tumour (mask probability > {params.threshold:g}, inside the brain, "
                           f"{describe(params)}); {ml:.1f} mL",
                    label_names={1: "tumour (whole)"}),
            Overlay(name="point activation", kind="saliency", volume=act_v, value_range=(0.0, 1.0),
                    colormap="inferno", units="probability", threshold=map_threshold,
                    legend=f"RASALoRE point activation as P(voxel is tumour), {scale}; brain only",
                    visible=False),  # secondary: starts hidden so the mask is what the user sees first
        ]
        n_slices = int((mask.sum((1, 2)) > 0).sum())
        notes = [f"Trained on {' and '.join(TRAINED_MODALITIES)} of 2 BRATS 2013 patients only; other "
                 "sequences run but were not trained.",
                 f"Whole-tumour volume {ml:.1f} mL over {n_slices} slices, "
                 f"{'FLAIR post-processing' if flair else 'post-processing for any sequence'} ({describe(params)}).",
                 "Research demo weights, not for clinical use."]
        if not calibrated:
            notes.append("No postprocess.json beside these weights: raw mask (threshold 0.5) and uncalibrated scores.")
        return EngineResult(overlays=overlays, scores={"tumour present": present}, notes=notes)

    def settings(self, flair: bool) -> tuple[PostParams, SliceCalibration, bool, SliceCalibration, float]:
        """``(post-processing, slice calibration, calibrated?, map calibration, map display threshold)`` from
        ``postprocess.json`` beside the weights (chosen on the validation patient by
        :mod:`engines.rasalore.calibrate`); the raw mask and uncalibrated scores without it."""
        from engines.rasalore.calibrate import FILE_NAME, SliceCalibration

        data = read_json(Path(self.weights).with_name(FILE_NAME))
        if data is None:
            return PostParams(threshold=self.threshold), SliceCalibration(), False, SliceCalibration(), 0.5
        params = PostParams.from_dict(data["post_flair" if flair else "post"])
        sc, mc = data["slice_calibration"], data.get("map_calibration") or {"a": 1.0, "b": 0.0, "threshold": 0.5}
        return (params, SliceCalibration(sc["a"], sc["b"]), True, SliceCalibration(mc["a"], mc["b"]),
                float(mc["threshold"]))


def is_flair(volume: Volume) -> bool:
    """Whether the volume is known to be FLAIR: "flair" or BraTS' "t2f" in its file name or series description."""
    md = volume.metadata or {}
    text = " ".join(str(md.get(k, "")) for k in ("source", "SeriesDescription", "series_description", "sequence"))
    return bool(re.search(r"flair|t2f|t2-?fl", text, re.IGNORECASE))


ENGINE_CLASS = RASALoREEngine  # found by engines.registry

__all__ = ["RASALoREEngine", "DEFAULT_WEIGHTS"]
