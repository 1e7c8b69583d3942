"""Side agreement of CXR maps: which lung a note names, which lung is the patient's right, and the shipped results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.common import laterality
from engines.common.lung_fields import patient_sides
from tests.engines.one_thread import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
WEIGHTS = Path(__file__).resolve().parents[3] / "resources" / "weights"


@pytest.mark.parametrize(("notes", "expected"), [
    ("Fever. Consolidation in the right lower lobe.", ("R", "Consolidation in the right lower lobe.")),
    ("Pain in the right chest. Opacity in the left upper zone.", ("L", "Opacity in the left upper zone.")),
    ("Right lower lobe consolidation; left basal effusion.", None),  # two sides
    ("Bilateral patchy opacities, worse on the right.", None),
    ("Right-handed patient with cough.", None),  # no finding sentence
    ("", None),
])
def test_named_side_reads_finding_sentences_only(notes: str, expected: tuple[str, str] | None) -> None:
    assert laterality.named_side(notes) == expected


def test_patient_right_is_the_image_left_piece_and_agreement() -> None:
    mask = np.zeros((40, 60), bool)
    mask[5:35, 5:25] = True  # image left: the patient's right on a frontal film
    mask[5:35, 35:50] = True
    right, left = patient_sides(mask)
    assert right[5:35, 5:25].all() and not right[:, 30:].any()
    assert left[:, 35:50].any() and not left[:, :30].any()
    assert patient_sides(mask[:, :30]) is None  # one lung only
    lit = np.where(right, 1.0, 0.0)
    assert laterality.agreement(lit, right, left, "R") == 1.0
    assert laterality.agreement(lit[:, ::-1], right, left, "R") == 0.0  # a mirrored map disagrees
    assert laterality.agreement(np.ones_like(lit), right, left, "L") == 0.5
    assert laterality.to_grid(np.arange(4.0).reshape(2, 2), (4, 6)).tolist()[3] == [2, 2, 2, 3, 3, 3]


def test_oracle_map_agrees_and_mirrored_map_disagrees_on_real_films(shared_data: Path) -> None:
    """On the validation films a map lighting the lung the note names agrees on every film; mirrored, on none.
    This fails if the right/left convention (patient_sides) or the map-to-image resampling were flipped."""
    data = shared_data / "cxr"
    cases = {c.filename: c for c in laterality.cases(data)}
    assert len(cases) >= 10 and {c.side for c in cases.values()} == {"R", "L"}

    def oracle(image: np.ndarray, case: laterality.Case, mirror: bool = False) -> np.ndarray:
        half = np.zeros((8, 8), np.float32)
        half[:, :4] = 1.0  # image left = patient's right
        m = half if case.side == "R" else half[:, ::-1]
        return m[:, ::-1] if mirror else m

    good = laterality.evaluate(oracle, data, "oracle")
    bad = laterality.evaluate(lambda i, c: oracle(i, c, mirror=True), data, "mirrored oracle")
    assert [r["agreement"] for r in good["cases"]] == [1.0] * len(good["cases"])
    assert [r["agreement"] for r in bad["cases"]] == [0.0] * len(bad["cases"])
    refs = [c["reference"]["value"] for c in good["comparisons"]]
    assert len(refs) == 2 and refs == sorted(refs, reverse=True) and good["verdict"] == "better"


@pytest.mark.parametrize("engine_id", ["multires_cxr", "radzero"])
def test_shipped_side_agreement_is_reported(engine_id: str) -> None:
    """Both CXR engines ship their side check (python -m engines.<id>.evaluate --side-agreement ...), and the
    one-line summary the app shows states the verdict against the stronger baseline."""
    res = json.loads((WEIGHTS / engine_id / laterality.FILE_NAME).read_text())
    assert len(res["cases"]) >= 10 and res["verdict"] == res["comparisons"][0]["verdict"]
    line = laterality.summary(WEIGHTS / engine_id)
    assert line.startswith("Side check:") and res["comparisons"][0]["baseline"] in line
    assert laterality.summary(WEIGHTS / "no-such-engine") is None


def test_side_check_note_only_for_the_shipped_weights(tmp_path: Path) -> None:
    """Every run of a CXR engine on its shipped weights ends with the side-check line; other weights get none."""
    import shutil

    from engines.multires_cxr.engine import MultiResCXREngine

    shipped = MultiResCXREngine()
    assert shipped.evaluation_notes() == [laterality.summary(WEIGHTS / "multires_cxr")]
    own = tmp_path / "model.safetensors"
    shutil.copyfile(shipped.default_weights(), own)
    assert MultiResCXREngine(own).evaluation_notes() == []


def test_side_agreement_option_refuses_a_folder_without_the_cxr_files(tmp_path: Path, capsys) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    laterality.add_argument(ap)
    with pytest.raises(SystemExit):
        ap.parse_args(["--side-agreement", str(tmp_path)])
    assert "has no metadata.csv and images/" in capsys.readouterr().err
