"""SeriesCandidate: one loadable thing found under a path, shown in the series picker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.volume import Volume


@dataclass(eq=False)
class SeriesCandidate:
    """A series (DICOM) or file (NIfTI, image) that :meth:`load` turns into a :class:`Volume`.

    Attributes:
        uid: SeriesInstanceUID (``"<uid>#<n>"`` for parts of a split series) or the file path.
        description: one line for a picker: modality, series description, number of images, size.
        modality: DICOM-style modality code.
        n_files: number of files the candidate reads.
        n_voxels: voxels it will hold (for choosing the largest series), 0 if unknown.
    """

    uid: str
    description: str
    modality: str
    n_files: int
    loader: Callable[[], Volume] = field(repr=False)
    n_voxels: int = 0

    def load(self) -> Volume:
        """Read the pixels; raises :class:`~viewer.io.errors.LoadError` with a one-line message."""
        return self.loader()
