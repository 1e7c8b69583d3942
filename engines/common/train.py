"""Pieces that every engine's train command shares: the learning-rate schedule, where the prepared arrays
are, the standard arguments, and the end of a run."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engines.common.distributed import finish_distributed, init_distributed


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor: linear warm-up over the first ``warmup`` steps, then a cosine decay that reaches 0 at
    ``steps`` (and stays there). Step it once per optimiser step."""
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def start_run(args: argparse.Namespace, seed_per_rank: bool = True) -> tuple[bool, int, int, torch.device]:
    """Join DDP when under torchrun, set the CPU thread count (``--threads``) and seed torch (``--seed``, plus the
    rank when ``seed_per_rank``). Returns (distributed, rank, world size, device)."""
    distributed, rank, world, device = init_distributed(torch.device(args.device))
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + (rank if seed_per_rank else 0))
    return distributed, rank, world, device


def find_npz(data: Path, size: int, side: str, engine_id: str) -> Path:
    """``<data>/<size>/<side>.npz`` or ``<data>/<side>.npz`` (written by ``engines.<engine_id>.prepare``).

    Raises:
        FileNotFoundError: neither exists (the message says which prepare command writes it).
    """
    for p in (data / str(size) / f"{side}.npz", data / f"{side}.npz"):
        if p.exists():
            return p
    raise FileNotFoundError(f"no {side}.npz for size {size} under {data}; run engines.{engine_id}.prepare")


def train_parser(description: str, configs: list[str] | None, steps: int, batch_size: int | None = None
                 ) -> argparse.ArgumentParser:
    """The first arguments of a train command: ``--data`` (prepared arrays), ``--config`` (one of ``configs``,
    default "demo"; any name when None), ``--steps``, ``--out`` and, when given, ``--batch-size``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--config", choices=configs, default="demo")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--out", type=Path, required=True)
    if batch_size is not None:
        ap.add_argument("--batch-size", type=int, default=batch_size)
    return ap


def add_run_args(ap: argparse.ArgumentParser, lr: float | None, warmup: int | None = None,
                 weight_decay: float | None = 0.05, threads: int = 1) -> None:
    """The optimiser and run arguments every train command takes: ``--lr`` (None: each stage's own), ``--weight-decay`` (unless None),
    ``--warmup`` (unless None), ``--seed``, ``--threads`` and ``--device`` (CUDA when available)."""
    ap.add_argument("--lr", type=float, default=lr)
    if weight_decay is not None:
        ap.add_argument("--weight-decay", type=float, default=weight_decay)
    if warmup is not None:
        ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def finish_run(summary: dict[str, Any], losses: list[float], out: Path | None,
               name: str = "train_summary.json") -> dict[str, Any]:
    """The end of a train run: rank 0 (``out`` given) writes ``summary`` as JSON, the DDP group is left, and the
    summary is returned with the per-step ``losses`` added (not written: the log has them)."""
    if out is not None:
        (out / name).write_text(json.dumps(summary, indent=1) + "\n")
    finish_distributed()
    summary["losses"] = losses
    return summary


def train_main(train: Callable[[argparse.Namespace], dict[str, Any]],
               parse_args: Callable[[list[str] | None], argparse.Namespace], argv: list[str] | None = None) -> None:
    """Run ``train(parse_args(argv))`` and print the one-line result (steps, time, first and last loss)."""
    s = train(parse_args(argv))
    if "first_loss" in s:
        print(f"done: {s['steps']} steps in {s['time_s']} s, loss {s['first_loss']:.4f} → {s['last_loss']:.4f}")


def random_affine(b: int, gen: torch.Generator) -> torch.Tensor:
    """``[b, 2, 3]`` affine_grid matrices of :func:`augment_grey` (±7°, scale 0.9–1.1, shift ±6 %); drawn first by
    it, so a generator cloned before ``augment_grey`` gives the same matrices here (e.g. to move masks along)."""
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(7)
    sc = 1 + (torch.rand(b, generator=gen) * 2 - 1) * 0.1
    tx, ty = ((torch.rand(2, b, generator=gen) * 2 - 1) * 0.12)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def augment_grey(x: torch.Tensor, gen: torch.Generator, background: float) -> torch.Tensor:
    """Random affine (±7°, scale 0.9–1.1, shift ±6 %) and contrast/brightness jitter of grey images.

    ``x`` ``[B, 1, S, S]`` → same; pixels shifted in from outside take the value ``background``.
    """
    b = x.shape[0]
    theta = random_affine(b, gen)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = background
    x = F.grid_sample(x - bg, grid, align_corners=False, padding_mode="zeros") + bg
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.2
    return x * gain + bias
