"""Scan DICOM files (headers only, in a thread pool) and group them into series.

Grouping: by SeriesInstanceUID; a UID group is split further when its files differ in orientation or image
size (each part becomes its own candidate, ``uid#1``, ``uid#2``…, with a warning). Each multi-frame file is
its own group.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .decode_pool import thread_map
from .dicom_header import DicomHeader, header_or_none
from .errors import LoadError


@dataclass
class SeriesGroup:
    """Headers of one loadable stack, with warnings found while grouping."""

    uid: str
    headers: list[DicomHeader]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_voxels(self) -> int:
        h = self.headers[0]
        return h.rows * h.columns * max(h.frames, len(self.headers))


def scan_headers(paths: list[Path]) -> tuple[list[DicomHeader], list[LoadError]]:
    """Parse every file's header in parallel; returns the readable headers and the errors."""
    results = thread_map(header_or_none, paths)
    ok = [r for r in results if isinstance(r, DicomHeader)]
    bad = [r for r in results if isinstance(r, LoadError)]
    return ok, bad


def _split_key(h: DicomHeader) -> tuple:
    o = None if h.orientation is None else tuple(np.round(h.orientation, 3) + 0.0)
    return (o, h.rows, h.columns, h.samples)


def group_series(headers: list[DicomHeader]) -> list[SeriesGroup]:
    """Group headers into stacks (see module docstring), largest first."""
    by_uid: dict[str, list[DicomHeader]] = defaultdict(list)
    groups: list[SeriesGroup] = []
    for h in headers:
        if h.frames > 1 or h.position is None or h.orientation is None:
            # multi-frame files and projection images (CR, DX, photos) stand alone
            groups.append(SeriesGroup(f"{h.series_uid}" if h.series_uid else str(h.path), [h]))
        else:
            by_uid[h.series_uid].append(h)
    for uid, hs in by_uid.items():
        parts: dict[tuple, list[DicomHeader]] = defaultdict(list)
        for h in hs:
            parts[_split_key(h)].append(h)
        if len(parts) == 1:
            groups.append(SeriesGroup(uid, hs))
            continue
        n_orient = len({k[0] for k in parts})
        what = "orientations" if n_orient > 1 else "image sizes"
        for n, part in enumerate(sorted(parts.values(), key=len, reverse=True), start=1):
            msg = f"series mixes {len(parts)} {what}; this is part {n} of {len(parts)} ({len(part)} images)"
            groups.append(SeriesGroup(f"{uid}#{n}", part, [msg]))
    # multi-frame files sharing a UID need distinct ids
    seen: dict[str, int] = defaultdict(int)
    for g in groups:
        seen[g.uid] += 1
        if seen[g.uid] > 1:
            g.uid = f"{g.uid}#f{seen[g.uid]}"
    groups.sort(key=lambda g: g.n_voxels, reverse=True)
    return groups


def describe(group: SeriesGroup) -> str:
    """Picker line, e.g. ``"CT · CT Body 3.0 · 20 images · 512×512×20"``."""
    h = group.headers[0]
    desc = h.text("SeriesDescription") or "(no description)"
    n = len(group.headers)
    depth = h.frames if n == 1 else n
    size = f"{h.columns}×{h.rows}" + (f"×{depth}" if depth > 1 else "")
    images = f"{n} image{'s' if n != 1 else ''}" + (f", {h.frames} frames" if h.frames > 1 else "")
    return f"{h.modality} · {desc} · {images} · {size}"
