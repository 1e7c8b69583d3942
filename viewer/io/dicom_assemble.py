"""Fill one preallocated ``[k, j, i]`` (or ``[k, j, i, 3]``) array from DICOM frames, in parallel.

A job is ``(header, frame index in that file, k slot in the output)``. Plain frames are read by threads;
JPEG 2000 frames are decoded by threads with imagecodecs (:mod:`.dicom_j2k`, no GIL); other codecs go to worker
processes for large series (:mod:`.decode_pool`) or are decoded here. Slots no job fills (missing slices)
are set to the smallest value present. Rescale and MONOCHROME1 handling follow :mod:`.dicom_pixels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import decode_pool, dicom_j2k
from .dicom_header import DicomHeader
from .dicom_pixels import (
    DtypePlan,
    can_read_natively,
    check_encapsulated_complete,
    decode_frame,
    finish_deferred,
    invert_monochrome1,
    load_frame_into,
    plan_dtype,
    store,
    stored_range,
)
from .errors import fail

Job = tuple[DicomHeader, int, int]


@dataclass
class Assembled:
    """The filled array, the plan used and whether MONOCHROME1 was inverted (window: ``lo + hi - wc``)."""

    array: np.ndarray
    plan: DtypePlan
    inverted_sum: float | None = None  # lo + hi used for the MONOCHROME1 inversion


def assemble(jobs: list[Job], n_slots: int) -> Assembled:
    """Decode every job into a new array of ``n_slots`` slices; raises LoadError on bad frames."""
    h0 = jobs[0][0]
    plan = plan_dtype([h for h, _, _ in jobs])
    shape: tuple[int, ...] = (n_slots, h0.rows, h0.columns)
    if h0.samples > 1:
        shape += (3,)
    out = np.empty(shape, dtype=plan.dtype)
    filled = np.zeros(n_slots, dtype=bool)
    for _, _, slot in jobs:
        filled[slot] = True

    native = [j for j in jobs if can_read_natively(j[0])]
    coded = [j for j in jobs if not can_read_natively(j[0])]
    if native:
        decode_pool.thread_map(lambda j: load_frame_into(j[0], j[1], out[j[2]], plan), native)
    if coded:
        _decode_coded(coded, out, plan)

    intercepts = [0.0] * n_slots
    for h, _, slot in jobs:
        intercepts[slot] = h.intercept
    if not filled.all():
        fill = min(out[s].min() for s in np.flatnonzero(filled)) if not plan.decide_after else 0
        out[~filled] = fill
    if plan.decide_after:
        out = finish_deferred(out, intercepts)
        plan = DtypePlan(out.dtype, "int" if out.dtype.kind == "i" else "float")

    inverted = None
    if h0.photometric == "MONOCHROME1" and h0.samples == 1:
        lo, hi = stored_range(h0)
        vals = [lo * h0.slope + h0.intercept, hi * h0.slope + h0.intercept]
        if plan.mode == "keep":
            vals = [lo, hi]
        inverted = float(min(vals) + max(vals))
        invert_monochrome1(out, min(vals), max(vals))
    return Assembled(out, plan, inverted)


def _decode_coded(jobs: list[Job], out: np.ndarray, plan: DtypePlan) -> None:
    mode = "keep" if plan.decide_after else plan.mode
    for h in {id(h): h for h, _, _ in jobs}.values():
        check_encapsulated_complete(h)

    def sink(n: int, raw: np.ndarray) -> None:
        h, _, slot = jobs[n]
        if raw.shape != out.shape[1:]:
            raise fail(h.path, f"frame size {raw.shape} differs from the series ({out.shape[1:]})")
        store(raw, out[slot], h.slope, h.intercept, mode)

    if all(dicom_j2k.handles(h) for h, _, _ in jobs):  # GIL-free codec: threads decode on every core

        def decode(n: int) -> None:
            h, f, _ = jobs[n]
            raw = dicom_j2k.decode_j2k_frame(h)
            sink(n, decode_frame(h, f) if raw is None else raw)

        decode_pool.thread_map(decode, range(len(jobs)))
        return
    if decode_pool.use_processes(len(jobs), sum(_coded_bytes(h) for h, _, _ in jobs)):
        try:
            decode_pool.decode_in_processes([(h, f) for h, f, _ in jobs], sink)
            return
        except decode_pool.WorkerFailed:
            decode_pool.shutdown_pool()  # fall back to decoding here
    for h, f, slot in jobs:
        load_frame_into(h, f, out[slot], plan)


def _coded_bytes(h: DicomHeader) -> int:
    try:
        return max(0, h.path.stat().st_size - (h.pixel_offset or 0)) // max(1, h.frames)
    except OSError:
        return 0
