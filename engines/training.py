"""Pieces that every engine's train command shares."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor: linear warm-up over the first ``warmup`` steps, then a cosine decay that reaches 0 at
    ``steps`` (and stays there). Step it once per optimiser step."""
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
