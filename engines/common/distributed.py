"""DDP set-up shared by every engine's train CLI: the same script runs on one CPU or under torchrun."""

from __future__ import annotations

import os

import torch


def init_distributed(device: torch.device) -> tuple[bool, int, int, torch.device]:
    """Start (or join) DDP under torchrun (``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA.

    Returns (distributed, rank, world size, device); on CUDA the device becomes ``cuda:LOCAL_RANK``.
    Without torchrun: (False, 0, 1, device).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False, 0, 1, device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return True, dist.get_rank(), dist.get_world_size(), device


def finish_distributed() -> None:
    """Leave the process group, if one was started."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
