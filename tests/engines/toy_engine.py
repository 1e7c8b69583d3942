"""A test-only engine: a real, tiny torch model (3×3 edge-detector conv + sigmoid) run slice by slice.

Never registered in the shipped registry; tests register it with ``engines.registry.register``. It follows
the engine contract exactly: ``progress`` after every slice, ``cancelled()`` polled before every slice,
overlays on the input's own grid (same affine), a mask and class scores. Knobs make it slow (``delay_s``
per slice, to test cancel) or fail in the ways the runtime must handle (``fail``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from engines.base import (
    CancelledFn,
    Engine,
    EngineError,
    EngineResult,
    Overlay,
    ProgressFn,
    _never,
    _no_progress,
    finite_or_raise,
)
from viewer.model.volume import Volume

LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


class ToyNet(nn.Module):
    """``[N, 1, H, W]`` normalised image → ``[N, 1, H, W]`` saliency in (0, 1): |conv3×3| → sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=True)
        self.gain = nn.Parameter(torch.tensor(4.0))
        with torch.no_grad():
            self.conv.weight.copy_(LAPLACIAN[None, None])
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gain * self.conv(x).abs() - 2.0)


class ToyEngine(Engine):
    """Edge saliency on any grey 2D/3D image (tests only).

    Args:
        delay_s: sleep per slice (s), to make a job long enough to cancel.
        fail: None, "engine_error" (an EngineError), "bug" (a ValueError), "oom" (a CUDA out-of-memory
            error whenever the device is CUDA — simulated, no GPU touched), "at_slice" (EngineError at
            slice 2, after progress was reported).
        weights: optional safetensors file loaded strictly into :class:`ToyNet`.
    """

    id: ClassVar[str] = "toy"
    title: ClassVar[str] = "Toy edges"
    paper: ClassVar[str] = "none (test fixture)"
    modalities: ClassVar[tuple[str, ...]] = ("*",)
    dims: ClassVar[tuple[int, ...]] = (2, 3)
    takes_query: ClassVar[bool] = True
    outputs = ("saliency", "mask", "scores")

    def __init__(self, delay_s: float = 0.0, fail: str | None = None, weights: Path | None = None) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.weights = weights
        self.devices_tried: list[str] = []
        self.model = ToyNet().eval()
        if weights is not None:
            from engines.weights import load_into, load_safetensors

            load_into(self.model, load_safetensors(weights), weights)

    def run(self, volume: Volume, query: str | None = None, device: str = "cpu",
            progress: ProgressFn = _no_progress, cancelled: CancelledFn = _never) -> EngineResult:
        """Saliency, mask (saliency > 0.5) and two scores; one progress report per slice."""
        self.devices_tried.append(device)
        if self.fail == "engine_error":
            raise EngineError("Toy edges cannot read this image (test failure).")
        if self.fail == "bug":
            raise ValueError("boom in toy engine")
        if self.fail == "oom" and str(device).startswith("cuda"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        self.check_input(volume)
        if volume.rgb:
            raise EngineError("Toy edges takes grey images.")
        data = volume.data3d.astype(np.float32)
        finite_or_raise(data)
        lo, hi = float(data.min()), float(data.max())
        norm = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
        n = data.shape[0]
        out = np.empty_like(norm)
        progress(0.0, f"{n} slice(s)")
        with torch.inference_mode():
            for k in range(n):
                self.check_cancelled(cancelled)
                if self.fail == "at_slice" and k == 2:
                    raise EngineError("Toy edges failed at slice 3 (test failure).")
                x = torch.from_numpy(norm[k])[None, None]
                out[k] = self.model(x)[0, 0].numpy()
                if self.delay_s:
                    time.sleep(self.delay_s)
                progress((k + 1) / n, f"slice {k + 1}/{n}")
        self.check_cancelled(cancelled)
        sal = out[0] if volume.array.ndim == 2 else out
        mask = (sal > 0.5).astype(np.uint8)
        meta = {"source": self.id, "query": query or ""}
        overlays = [
            Overlay(name="edges", kind="saliency", volume=Volume(sal, volume.affine, volume.modality, dict(meta),
                                                                 volume.spacing_known),
                    value_range=(0.0, 1.0), colormap="inferno", legend="edge saliency (sigmoid)",
                    units="a.u."),
            Overlay(name="edge mask", kind="mask", volume=Volume(mask, volume.affine, volume.modality, dict(meta),
                                                                 volume.spacing_known),
                    colormap="labels", legend="saliency > 0.5", label_names={1: "edge"}),
        ]
        scores = {"edge fraction": float(mask.mean()), "mean saliency": float(sal.mean())}
        return EngineResult(overlays=overlays, scores=scores, notes=["test engine"])
