"""Fixtures for the rasalore tests: a small prepared subset of the real BRATS 2013 data."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def brain_dir(shared_data: Path) -> Path:
    return shared_data / "brain_mri"


@pytest.fixture(scope="session")
def prepared_small(brain_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/{train,val,test}.npz`` (+ ``gt_*``) from one training, the validation and the held-out patient of
    the committed split, ~12 slices per volume (around the tumour and at the brain's top), by the real prepare code."""
    import json

    import numpy as np

    from engines.rasalore.prepare import SPLIT_FILE, prepare_side

    split = json.loads(SPLIT_FILE.read_text())
    out = tmp_path_factory.mktemp("rasalore")
    for side in ("train", "val", "test"):
        arrays, gt = prepare_side(brain_dir, split[side][:1], limit_slices=12)
        np.savez(out / f"{side}.npz", **arrays)
        np.savez(out / f"gt_{side}.npz", **gt)
    return out
