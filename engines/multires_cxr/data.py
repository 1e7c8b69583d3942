"""Image preprocessing shared by prepare, training, evaluation and the engine (numpy + torch only).

One radiograph goes through :func:`to_grey` → :func:`normalise` (robust percentiles to [0, 1]) →
:func:`resize_square` (from :mod:`engines.common.image`; aspect ratio not kept, as is usual for
ChestX-ray14 models). The network then sees ``(x - MEAN) / STD``.

Also: pixel-content de-duplication (:func:`duplicate_groups`) and the patient-level split (:func:`split_groups`).
"""

from __future__ import annotations

import numpy as np

from engines.common.image import normalise, resize_mask, resize_square, to_grey

__all__ = ["MEAN", "STD", "duplicate_groups", "merge_groups", "normalise", "resize_mask", "resize_square",
           "sigmoid", "split_groups", "thumbnail", "to_grey", "uses_lung_fields"]

MEAN, STD = 0.5, 0.25


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


def uses_lung_fields(config: object) -> bool:
    """Whether weights pool over the lung fields (recorded by train in ``config.extra["pool_region"]``)."""
    return getattr(config, "extra", {}).get("pool_region") == "lung_fields"


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function (float64)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -60, 60)))
