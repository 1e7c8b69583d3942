"""Fixtures for the hlip tests: a small prepared subset of the real data at 16×32×32 per scan."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prepared_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One BRATS patient (train side) + 24 head-CT slices, prepared with the committed split."""
    from engines.hlip.prepare import SPLIT_FILE, prepare

    out = tmp_path_factory.mktemp("hlip")
    prepare(shared_data, out, SPLIT_FILE, size=(16, 32, 32), patients=("brats_2013_pat0001_1",), gli=False,
            ct_limit=40)
    return out


@pytest.fixture(scope="session")
def brats_flair(shared_data: Path):
    """The FLAIR of BRATS 2013 patient 2 (held-out side) as a Volume."""
    from viewer.io.nifti import read_nifti

    return read_nifti(shared_data / "brain_mri" / "brats_2013_pat0002_1" / "Flair_subtrMeanDivStd.nii.gz")
