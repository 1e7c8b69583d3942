"""Qt-free readers: DICOM (series, multi-frame, 2D), NIfTI and raster images → :class:`~viewer.model.volume.Volume`.

Public API:
    find_series(path) -> list[SeriesCandidate]   # file or folder (recursive); each has .load()
    load_volume(path, series_uid=None) -> Volume # the given series, or the largest one
    write_nifti(volume, out_path)                # .nii/.nii.gz, RAS affine like dcm2niix
    LoadError, LoadWarning                       # one-line errors; warnings in metadata["warnings"]
"""

from .candidate import SeriesCandidate
from .dispatch import find_series, load_volume
from .errors import LoadError, LoadWarning
from .nifti_write import write_nifti

__all__ = ["LoadError", "LoadWarning", "SeriesCandidate", "find_series", "load_volume", "write_nifti"]
