"""Shared pre-processing of dermoscopy photos (numpy + torch; no Pillow, no Qt).

Images are RGB ``uint8 [H, W, 3]``; the networks see them squashed to ``S × S`` (the source data are already
squashed to 256×256, see ../shared/data/dermoscopy/README.md) and normalised per channel with
:data:`MEAN`/:data:`STD` (values in [0, 1] scale). The same :func:`resize_rgb` is used by ``prepare`` and by
the engine, so training and inference see identical pixels.
"""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = ("melanoma", "seborrheic_keratosis", "nevus")
SHORT: tuple[str, ...] = ("MEL", "SK", "NEV")
#: fixed per-channel mean/std in [0, 1] (rounded guesses; the 64 px training side measures mean 0.709/0.590/0.546,
#: std 0.150/0.159/0.172 — close enough for standardisation; kept fixed because the shipped weights use them)
MEAN = np.array([0.70, 0.56, 0.52], dtype=np.float32)
STD = np.array([0.16, 0.16, 0.18], dtype=np.float32)


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` → ``uint8 [size, size, 3]`` (bilinear with anti-aliasing, torch)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary ``[H, W]`` → ``uint8 [size, size]`` 0/1 (area average, threshold 0.5)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy((np.asarray(mask) > 0).astype(np.float32))[None, None]
    return (F.interpolate(x, size=(size, size), mode="area")[0, 0] >= 0.5).to(torch.uint8).numpy()


def to_tensor(images: np.ndarray):  # type: ignore[no-untyped-def]
    """``uint8 [N, S, S, 3]`` → normalised float32 tensor ``[N, 3, S, S]``."""
    import torch

    x = torch.from_numpy(np.array(images, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
    return (x - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]


def to_unit(images: np.ndarray):  # type: ignore[no-untyped-def]
    """``uint8 [N, S, S, 3]`` → float32 tensor ``[N, 3, S, S]`` in [-1, 1] (autoencoder / MAE pixel space)."""
    import torch

    return torch.from_numpy(np.array(images, dtype=np.float32)).permute(0, 3, 1, 2) / 127.5 - 1.0


def from_unit(x) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Tensor ``[N, 3, S, S]`` in [-1, 1] → ``uint8 [N, S, S, 3]``."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def split_units(ids: list[str], labels: np.ndarray, same_lesion: list[tuple[str, str]], test_fraction: float,
                seed: int) -> np.ndarray:
    """Boolean ``[N]`` "held out", stratified by class, whole same-lesion groups on one side.

    Args:
        ids: image ids. labels: int ``[N]`` class index. same_lesion: pairs of ids showing one lesion.
        test_fraction: fraction of each class held out. seed: numpy seed.
    """
    index = {k: i for i, k in enumerate(ids)}
    unit = np.arange(len(ids))
    for a, b in same_lesion:
        if a in index and b in index:
            ua, ub = unit[index[a]], unit[index[b]]
            unit[unit == ub] = ua
    rng = np.random.default_rng(seed)
    test = np.zeros(len(ids), dtype=bool)
    for c in np.unique(labels):
        units = np.unique(unit[labels == c])
        rng.shuffle(units)
        n_test = int(round(test_fraction * (labels == c).sum()))
        taken = 0
        for u in units:
            if taken >= n_test:
                break
            members = unit == u
            test[members] = True
            taken += int(members.sum())
    return test
