"""Where the lesion is, without a network: a colour threshold that keeps the dark blob at the centre of the photo.

Dermoscopy lesions are darker than the surrounding skin and, in ISIC photos, nearly always cover the centre.
:func:`lesion_region` thresholds a blurred "darkness" image (Otsu), keeps the dark pixels connected to a central
disc (geodesic reconstruction by repeated 3×3 max-pooling, no SciPy), fills holes and dilates by a few pixels.
The engine multiplies its evidence map by this region (:func:`lesion_map`), so the surrounding skin (and the dark
vignette of the dermatoscope in the corners) is never lit. When nothing dark touches the centre it falls back to a
centred disc.

torch + numpy only (evaluation imports it). Arrays: photo ``uint8 [S, S, 3]``; masks ``bool [S, S]`` in the
photo's pixel frame (row, column).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: radius of the centred disc, as a fraction of the side: seeds of the lesion region, and the baseline map
CENTRE_RADIUS = 0.12
DISC_RADIUS = 0.3


def centred_disc(size: int, radius: float = DISC_RADIUS) -> np.ndarray:
    """bool ``[size, size]``: pixels whose centre lies within ``radius · size`` of the image centre."""
    c = (np.arange(size) + 0.5) / size - 0.5
    return (c[:, None] ** 2 + c[None, :] ** 2) <= radius ** 2


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of ``values`` (maximises the between-class variance of a ``bins``-bin histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    hist, edges = np.histogram(v, bins=bins)
    p = hist / max(hist.sum(), 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * (1 - w0))
    between = np.nan_to_num(between)
    return float(edges[int(np.argmax(between)) + 1])


def _reconstruct(seed: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Pixels of ``allowed`` connected (8-neighbourhood) to ``seed``; both float ``[1, 1, S, S]`` 0/1."""
    cur = seed * allowed
    for _ in range(4 * seed.shape[-1]):
        nxt = F.max_pool2d(cur, 3, 1, 1) * allowed
        if torch.equal(nxt, cur):
            break
        cur = nxt
    return cur


def lesion_region(photo: np.ndarray, dilate_px: int = 3) -> np.ndarray:
    """bool ``[S, S]``: the estimated lesion region of an RGB photo ``uint8 [S, S, 3]`` (see the module docstring)."""
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32)[..., :3] / 255.0).permute(2, 0, 1)[None]
    size = x.shape[-1]
    # darkness: 1 − luma, lightly blurred (≈ 1/64 of the side) so that hairs and pores do not split the blob
    dark = 1.0 - (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    k = max(1, size // 64) * 2 + 1
    dark = F.avg_pool2d(F.pad(dark, (k // 2,) * 4, mode="replicate"), k, 1)
    fg = (dark >= otsu_threshold(dark.numpy())).float()
    seed = torch.from_numpy(centred_disc(size, CENTRE_RADIUS).astype(np.float32))[None, None]
    blob = _reconstruct(seed, fg)
    if float(blob.sum()) == 0:
        return centred_disc(size)
    # fill holes: background = not-blob pixels connected to the border
    border = torch.zeros_like(blob)
    border[..., 0, :] = border[..., -1, :] = border[..., :, 0] = border[..., :, -1] = 1
    outside = _reconstruct(border, 1 - blob)
    filled = 1 - outside
    if dilate_px > 0:
        filled = F.max_pool2d(filled, 2 * dilate_px + 1, 1, dilate_px)
    return filled[0, 0].numpy() > 0.5


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """``[N, n, n]`` → ``[N, size, size]`` bilinear, pixel centres aligned (both grids cover the whole photo)."""
    t = torch.from_numpy(np.asarray(maps, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def lesion_map(evidence: np.ndarray, photos: np.ndarray, scale: float) -> np.ndarray:
    """float32 ``[N, S, S]``: evidence maps ``[N, n, n]`` upsampled to the photos' side ``S``, divided by the fixed
    ``scale`` and multiplied by each photo's :func:`lesion_region` (photos ``uint8 [N, S, S, 3]``).

    Not clipped: shown clipped to [0, 1] (1 = ``scale`` logit units of evidence), the unclipped map has one peak.
    """
    regions = np.stack([lesion_region(p) for p in photos]).astype(np.float32)
    return upsample(evidence, photos.shape[1]) / float(scale) * regions
