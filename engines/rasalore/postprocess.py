"""Post-processing of the stage-2 mask on the input grid (numpy + torch only; no scipy, so evaluation on a
torch-only machine runs exactly the code the app runs).

* :func:`label_components`: 6-connected 3D components of a binary volume ``[Z, H, W]`` (vectorised union-find
  over the face-adjacent voxel pairs, with pointer jumping);
* :func:`erode_in_plane`: a brain mask shrunk by ``r`` pixels within each axial slice (square structuring
  element), so the bright FLAIR rim at the brain's edge is not taken for tumour;
* :func:`clean_mask`: the engine's post-processing — threshold inside the (eroded) brain, optionally (FLAIR
  only) keep only voxels brighter than a percentile of the brain's intensities, then keep the components of at
  least ``keep_fraction`` × the largest one and at least ``min_ml`` mL, optionally (FLAIR only) grown within their
  box by :func:`grow_in_box` (Otsu's bright class connected to the mask: a GrabCut-like refinement);
* :func:`grow_in_box`: that region growing, also used on 2D stage-1 pseudo-masks by :mod:`engines.rasalore.refine`;
* :class:`PostParams`: those parameters, chosen on the validation patient (never the test patient) by
  :mod:`engines.rasalore.calibrate` and stored in ``postprocess.json`` beside the weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PostParams:
    """Post-processing parameters (see the module docstring).

    Attributes:
        threshold: mask probability above which a voxel is tumour (operating point, probability units).
        erode_px: in-plane erosion of the brain mask in pixels before the mask is restricted to it.
        keep_fraction: components smaller than this fraction of the largest one are dropped (1.0 = largest only).
        min_ml: components smaller than this volume (mL) are dropped.
        flair_percentile: FLAIR refinement — keep only voxels above this percentile (0–100) of the brain's
            normalised intensities; 0 = off (always off for other sequences, where tumour need not be bright).
        flair_otsu: FLAIR refinement by region growing instead — inside the box of the kept mask grown by
            :data:`BOX_MARGIN` voxels, the bright class of Otsu's split of the FLAIR intensities, the parts connected
            to the mask (adapts to the tumour's size, unlike a brain percentile).
    """

    threshold: float = 0.5
    erode_px: int = 0
    keep_fraction: float = 0.0
    min_ml: float = 0.0
    flair_percentile: float = 0.0
    flair_otsu: bool = False

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PostParams:
        names = ("threshold", "erode_px", "keep_fraction", "min_ml", "flair_percentile", "flair_otsu")
        return cls(**{k: d[k] for k in names if k in d})


#: Voxels by which the kept mask's box grows before the FLAIR region growing (:attr:`PostParams.flair_otsu`).
BOX_MARGIN = 8

#: Before this package chose anything: the raw network mask (threshold 0.5 inside the brain, nothing removed).
RAW = PostParams()


def read_json(path: Path) -> dict | None:
    """A JSON file as a dict, or None when it does not exist."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def describe(p: PostParams) -> str:
    """The component rule and refinements of ``p`` in a few words (legend, notes, card)."""
    kept = ("largest connected component" if p.keep_fraction >= 1.0 else
            f"components ≥ {p.keep_fraction:g} × the largest and ≥ {p.min_ml:g} mL")
    extra = f", brain eroded {p.erode_px} px" if p.erode_px else ""
    if p.flair_percentile:
        extra += f", FLAIR brighter than the brain's {p.flair_percentile:g}th percentile"
    if p.flair_otsu:
        extra += ", grown over the bright FLAIR region in its box (Otsu)"
    return kept + extra


def label_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """6-connected components of a boolean ``[Z, H, W]`` volume.

    Returns:
        ``(labels, sizes)``: int32 labels of the volume's shape (0 = background, 1..n ordered by first voxel in
        C order) and int64 ``sizes[n]`` (voxels of component ``i + 1``).
    """
    m = np.ascontiguousarray(mask, dtype=bool)
    labels = np.zeros(m.shape, np.int32)
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return labels, np.zeros(0, np.int64)
    _, h, w = m.shape
    flat = m.ravel()
    us, vs = [], []
    for stride, ok in ((1, idx % w != w - 1), (w, (idx // w) % h != h - 1), (h * w, idx + h * w < flat.size)):
        cand = idx[ok]
        nb = cand + stride
        has = flat[nb]
        us.append(np.searchsorted(idx, cand[has]))
        vs.append(np.searchsorted(idx, nb[has]))
    u, v = np.concatenate(us), np.concatenate(vs)
    parent = np.arange(idx.size)
    while u.size:
        pu, pv = parent[u], parent[v]
        lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
        diff = lo != hi
        if not diff.any():
            break
        np.minimum.at(parent, hi[diff], lo[diff])
        while True:  # pointer jumping: every voxel points at its root
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
        u, v = u[diff], v[diff]
    _, comp = np.unique(parent, return_inverse=True)
    labels.ravel()[idx] = comp.astype(np.int32) + 1
    return labels, np.bincount(comp).astype(np.int64)


def erode_in_plane(brain: np.ndarray, r: int) -> np.ndarray:
    """The boolean brain mask ``[Z, H, W]`` eroded by ``r`` pixels in each axial slice (``(2r+1)²`` square)."""
    if r <= 0:
        return np.asarray(brain, bool)
    import torch
    import torch.nn.functional as F

    outside = torch.from_numpy(~np.asarray(brain, bool)).float()[:, None]
    grown = F.max_pool2d(F.pad(outside, (r, r, r, r), value=1.0), 2 * r + 1, stride=1)
    return ~(grown[:, 0].numpy() > 0.5)


def clean_mask(prob: np.ndarray, brain: np.ndarray, params: PostParams, voxel_ml: float,
               vol01: np.ndarray | None = None) -> np.ndarray:
    """Binary tumour mask ``[Z, H, W]`` (bool) from the mask probability on the input grid.

    Args:
        prob: stage-2 mask probability ``[Z, H, W]`` in [0, 1] (0 where no slice was analysed).
        brain: boolean brain mask of the same shape.
        params: the operating point and clean-up parameters.
        voxel_ml: volume of one voxel in mL (spacing product / 1000).
        vol01: the normalised volume (needed only for the FLAIR refinement, ``params.flair_percentile > 0``).
    """
    m = (prob > params.threshold) & erode_in_plane(brain, params.erode_px)
    if params.flair_percentile > 0 and vol01 is not None and brain.any():
        m &= vol01 > np.percentile(vol01[brain], params.flair_percentile)
    m = keep_components(m, params, voxel_ml)
    if params.flair_otsu and vol01 is not None and m.any():
        m = grow_in_box(m, vol01, brain)
    return m


def keep_components(m: np.ndarray, params: PostParams, voxel_ml: float) -> np.ndarray:
    """The components of ``m`` that pass ``params``' rule (the largest always stays)."""
    if params.keep_fraction <= 0 and params.min_ml <= 0:
        return m
    labels, sizes = label_components(m)
    if sizes.size == 0:
        return m
    keep = (sizes >= params.keep_fraction * sizes.max()) & (sizes * voxel_ml >= params.min_ml)
    keep[int(np.argmax(sizes))] = True  # the largest component always stays
    return np.concatenate([[False], keep])[labels]


def otsu(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of ``values`` (maximises the between-class variance of a ``bins``-bin histogram)."""
    h, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(h)
    w1 = w0[-1] - w0
    m0 = np.cumsum(h * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def grow_in_box(seed: np.ndarray, image: np.ndarray, brain: np.ndarray, margin: int = BOX_MARGIN) -> np.ndarray:
    """Region growing within the seed's box: the bright Otsu class of ``image`` inside the seed's bounding box
    (grown by ``margin`` voxels on every axis) and the brain, the components touching the seed. Works on 2D
    ``[H, W]`` or 3D ``[Z, H, W]`` arrays; returns the seed when nothing bright touches it."""
    seed, brain = np.asarray(seed, bool), np.asarray(brain, bool)
    if not seed.any():
        return seed
    box = np.zeros_like(seed)
    sl = []
    for ax in range(seed.ndim):
        hit = np.nonzero(seed.any(axis=tuple(a for a in range(seed.ndim) if a != ax)))[0]
        sl.append(slice(max(0, hit[0] - margin), min(seed.shape[ax], hit[-1] + 1 + margin)))
    box[tuple(sl)] = True
    region = box & brain
    if region.sum() < 16:
        return seed
    bright = (image > otsu(image[region])) & region
    labels, _ = label_components(bright if bright.ndim == 3 else bright[None])
    labels = labels.reshape(bright.shape)
    hit = np.unique(labels[seed & bright])
    out = np.isin(labels, hit[hit > 0])
    return out if out.any() else seed
