"""Retrieve remote series into the local library and index them once complete (Qt-free).

:func:`retrieve_series` is what the study browser's background worker runs: list the series' instances,
fetch those not yet stored (resume), check that every listed instance arrived, move the series folder into
place and index it. Cancel (``cancelled()`` true) stops within one instance; what arrived stays in the
hidden ``.partial`` folder for the next try, and nothing of the series is indexed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RemoteError, TransferCancelled
from .library import SeriesWriter
from .records import RemoteSeries

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]


@dataclass
class RetrieveReport:
    """What one retrieve did. ``folders``: the complete series folders now in the library and the index."""

    series: int = 0
    instances: int = 0
    fetched: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0
    folders: list[Path] = field(default_factory=list)
    series_uids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mb = self.bytes / 1e6
        rate = f", {mb / self.seconds:.1f} MB/s" if self.seconds > 0 and self.bytes else ""
        kept = f", {self.skipped} already here" if self.skipped else ""
        return (f"{self.series} series, {self.instances} instances ({self.fetched} fetched{kept}; "
                f"{mb:.1f} MB in {self.seconds:.1f} s{rate})")


def retrieve_series(client, series: list[RemoteSeries], library: str | Path,  # noqa: ANN001 - a client
                    db_path: str | Path | None = None, progress: Progress | None = None,
                    cancelled: Cancelled | None = None) -> RetrieveReport:
    """Fetch ``series`` with ``client`` (a DimseClient or WebClient) into ``library`` and index them.

    ``progress(done, total)`` counts instances over all the series. Raises TransferCancelled on cancel and
    :class:`~viewer.net.errors.NetError` on failures; series completed before that stay indexed.
    """
    from ..io.index import StudyIndex

    progress = progress or (lambda done, total: None)
    cancelled = cancelled or (lambda: False)
    t0 = time.perf_counter()
    report = RetrieveReport()
    listed = []
    for s in series:
        if cancelled():
            raise TransferCancelled("Retrieve cancelled before any transfer")
        listed.append((s, client.find_instances(s.study_uid, s.uid)))
    total = sum(len(inst) for _s, inst in listed)
    base = 0
    for s, instances in listed:
        writer = SeriesWriter(library, s.study_uid, s.uid)
        before = len(set(instances) & writer.have)
        report.skipped += before

        def step(done: int, _n: int, base: int = base) -> None:
            progress(base + done, total)

        step(before, len(instances))
        client.retrieve(s.study_uid, s.uid, writer, instances, progress=step, cancelled=cancelled)
        missing = writer.missing(set(instances))
        report.fetched += writer.added
        report.bytes += writer.bytes_written
        if missing:
            got = len(instances) - len(missing)
            raise RemoteError(f"the server sent {got} of {len(instances)} instances of series "
                              f"{s.description or s.uid}; retrieve again to fetch the rest")
        folder = writer.finish()
        with StudyIndex(db_path) as index:
            index.import_paths([folder])
        report.series += 1
        report.instances += len(instances)
        report.folders.append(folder)
        report.series_uids.append(s.uid)
        base += len(instances)
        progress(base, total)
    report.seconds = time.perf_counter() - t0
    return report
