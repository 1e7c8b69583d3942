"""Image preprocessing shared by prepare, training, evaluation and the engine (numpy + torch only).

One radiograph goes through :func:`to_grey` → :func:`normalise` (robust percentiles to [0, 1]) →
:func:`resize_square` (antialiased bilinear to ``size × size``, aspect ratio not kept, as is usual for
ChestX-ray14 models). The network then sees ``(x - MEAN) / STD``.

Also: pixel-content de-duplication (:func:`duplicate_groups`) and the patient-level split (:func:`split_groups`).
"""

from __future__ import annotations

import numpy as np

P_LOW, P_HIGH = 0.5, 99.5
MEAN, STD = 0.5, 0.25


def to_grey(array: np.ndarray, rgb: bool) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3|4]`` (when ``rgb``) → float32 ``[H, W]`` (ITU-R BT.601 luma for colour)."""
    a = np.asarray(array)
    if rgb:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return a.astype(np.float32, copy=False)


def normalise(grey: np.ndarray) -> np.ndarray:
    """Robust intensity scaling: the 0.5th/99.5th percentiles → 0/1, clipped. ``[H, W]`` → float32 ``[H, W]``.

    Raises:
        ValueError: when the image has no contrast (the percentiles coincide).
    """
    lo, hi = np.percentile(grey, [P_LOW, P_HIGH])
    if not hi > lo:
        lo, hi = float(grey.min()), float(grey.max())
    if not hi > lo:
        raise ValueError("the image is constant (no contrast)")
    return np.clip((grey - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of ``[H, W]`` to ``[size, size]`` (torch), float32."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary ``[H, W]`` → uint8 ``[size, size]`` (area-average, then ≥ 0.5)."""
    return (resize_square(mask.astype(np.float32), size) >= 0.5).astype(np.uint8)


def thumbnail(image01: np.ndarray, n: int = 64) -> np.ndarray:
    """Detail thumbnail for near-duplicate search: flattened ``[n*n]``, zero mean, unit norm.

    The ``n × n`` image minus its ``n/4``-pixel low-pass (every chest radiograph looks alike at low
    resolution: whole-image correlations of different patients reach 0.96, detail correlations ≤ 0.8).
    """
    t = resize_square(image01, n).astype(np.float64)
    low = resize_square(resize_square(image01, n // 4), n).astype(np.float64)
    t = (t - low).ravel()
    t -= t.mean()
    return t / (np.linalg.norm(t) + 1e-12)


def duplicate_groups(thumbs: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """Union-find over images whose thumbnails correlate above ``threshold``.

    Args:
        thumbs: ``[N, D]`` unit-norm thumbnails.
    Returns:
        int ``[N]``: a group id per image (near-identical images share one).
    """
    n = len(thumbs)
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return int(a)

    corr = thumbs @ thumbs.T
    for a, b in zip(*np.nonzero(np.triu(corr, 1) > threshold), strict=True):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[rb] = ra
    return np.array([find(i) for i in range(n)])


def merge_groups(patient_ids: list[str], dup_groups: np.ndarray) -> np.ndarray:
    """Split units: images of one patient, joined with every image near-identical to one of them.

    Returns:
        int ``[N]``: a unit id per image (connected components of "same patient" ∪ "near-duplicate").
    """
    n = len(patient_ids)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    first: dict[tuple[str, object], int] = {}
    for i in range(n):
        for key in (("p", patient_ids[i]), ("d", int(dup_groups[i]))):
            if key in first:
                union(first[key], i)
            else:
                first[key] = i
    return np.array([find(i) for i in range(n)])


def split_groups(groups: np.ndarray, strata: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Assign whole groups to train (False) / test (True), stratified by a per-image stratum.

    A group's stratum is the highest image stratum in it (e.g. 1 = has a negative label). Within each stratum
    the groups are shuffled with ``seed`` and the first ``round(test_fraction · count)`` go to test.

    Returns:
        bool ``[N]``: True for held-out images.
    """
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    gstrat = np.array([strata[groups == g].max() for g in uniq])
    test_groups: set[int] = set()
    for s in np.unique(gstrat):
        members = uniq[gstrat == s]
        members = members[rng.permutation(len(members))]
        k = int(round(test_fraction * len(members)))
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
        test_groups.update(int(g) for g in members[:k])
    return np.array([int(g) in test_groups for g in groups])
