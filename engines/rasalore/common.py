"""Small training helpers shared by the two stages (torch + numpy only): data, augmentation, DDP."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.common.train import warmup_cosine


def load_side(data: Path, side: str) -> dict[str, np.ndarray]:
    """``<data>/<side>.npz`` (written by :mod:`engines.rasalore.prepare`) as a dict of arrays."""
    p = Path(data) / f"{side}.npz"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found; run `python -m engines.rasalore.prepare` first")
    with np.load(p) as d:
        return {k: d[k] for k in d.files}


def subset(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of at most ``limit`` slices, half tumour and half healthy (all when ``limit`` is None)."""
    if limit is None:
        return np.arange(len(labels))
    pos, neg = np.nonzero(labels == 1)[0], np.nonzero(labels == 0)[0]
    return np.sort(np.concatenate([pos[: limit - limit // 2], neg[: limit // 2]]))


def balanced_batches(labels: np.ndarray, batch: int, rng: np.random.Generator):  # noqa: ANN201
    """Endless index batches, half tumour (label 1), half healthy (label 0); ambiguous (-1) never drawn."""
    pos, neg = np.nonzero(labels == 1)[0], np.nonzero(labels == 0)[0]
    while True:
        yield np.concatenate([rng.choice(pos, batch - batch // 2), rng.choice(neg, batch // 2)])


def augment(x: torch.Tensor, masks: list[torch.Tensor], gen: torch.Generator, rot90: bool = True
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random left-right / up-down flips and a random multiple of 90° rotation per batch (same for
    ``x [B,1,S,S]`` and each mask ``[B,S,S]``), intensity gamma exp(U(−0.35, 0.35)), gain U(0.85, 1.15),
    Gaussian noise σ = 0.02 (the authors: flips, rotations up to ±90°, brightness/contrast, noise)."""
    b = x.shape[0]
    for dim in (-1, -2):
        f = torch.rand(b, generator=gen) < 0.5
        if f.any():
            x = x.clone()
            x[f] = x[f].flip(dim)
            masks = [m.clone() for m in masks]
            for m in masks:
                m[f] = m[f].flip(dim)
    if rot90:
        k = int(torch.randint(0, 4, (1,), generator=gen))
        x = torch.rot90(x, k, (-2, -1))
        masks = [torch.rot90(m, k, (-2, -1)) for m in masks]
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.35)
    x = (x.clamp(min=0) ** gamma * gain + torch.randn(x.shape, generator=gen) * 0.02).clamp(0, 1)
    return x, masks


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU thread(s)"


@dataclass
class TrainingLoop:
    """What both stages' train loops start from (see :func:`start_training`)."""

    net: torch.nn.Module  # the model, wrapped in DDP when distributed
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    rng: np.random.Generator
    gen: torch.Generator
    batches: Any
    losses: list[float] = field(default_factory=list)

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` (zero grads, backward, step, schedule); the loss is recorded and returned."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.losses.append(loss.item())
        return self.losses[-1]


def start_training(model: torch.nn.Module, args: Any, labels: np.ndarray, rank: int, distributed: bool,
                   weight_decay: float, max_warmup: int) -> TrainingLoop:
    """DDP wrapper, AdamW over the trainable parameters, warm-up + cosine schedule (warm-up: a tenth of the steps,
    at most ``max_warmup``), the per-rank numpy and torch generators, the balanced batch stream, and ``args.out``."""
    net: torch.nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=weight_decay)
    sched = warmup_cosine(opt, args.steps, max(1, min(max_warmup, args.steps // 10)))
    rng = np.random.default_rng(args.seed + 100 * rank)
    gen = torch.Generator().manual_seed(args.seed + 1 + rank)
    batches = balanced_batches(labels, args.batch_size, rng)
    args.out.mkdir(parents=True, exist_ok=True)
    return TrainingLoop(net, opt, sched, rng, gen, batches)
