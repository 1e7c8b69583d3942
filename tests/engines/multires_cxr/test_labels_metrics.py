"""Rule-based label mapper, AUC and soft Dice on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.common.cxr_labels import LABELS, map_labels
from engines.multires_cxr.metrics import minmax, roc_auc, soft_dice


def lab(y: np.ndarray, name: str) -> float:
    return float(y[LABELS.index(name)])


def test_no_finding_is_all_negative() -> None:
    y = map_labels("No Finding", "husband had pneumonia; consolidation elsewhere")
    assert (y == 0).all()


def test_pneumonia_findings_and_note_keywords() -> None:
    y = map_labels("Streptococcus", "Right lower lobe consolidation. Small right sided pleural effusion.")
    assert lab(y, "Pneumonia") == 1 and lab(y, "Consolidation") == 1 and lab(y, "Effusion") == 1
    assert lab(y, "Cardiomegaly") == -1  # not mentioned → unknown
    y = map_labels("COVID-19", "Patchy opacities. No pleural effusions. No pneumothorax is evident.")
    assert lab(y, "Pneumonia") == 1 and lab(y, "Effusion") == 0 and lab(y, "Pneumothorax") == 0
    y = map_labels("ARDS", "Heart is mildly enlarged. Hiatus hernia.")
    assert lab(y, "Pneumonia") == -1 and lab(y, "Cardiomegaly") == 1 and lab(y, "Hernia") == 1


def test_negation_and_normal_notes() -> None:
    y = map_labels("COVID-19", "No focal collapse or consolidation.")
    assert lab(y, "Atelectasis") == 0 and lab(y, "Consolidation") == 0
    assert (map_labels("COVID-19", "Examination within the limits of the norm.") == 0).all()
    # a normal phrase does not win over an abnormality in the same notes
    y = map_labels("COVID-19", "No significant findings reported. In retrospect, a subtle ground-glass pattern.")
    assert lab(y, "Pneumonia") == 1
    y = map_labels("Pneumocystis", "Airspace consolidations with mass-like appearance.")
    assert lab(y, "Mass") == -1 and lab(y, "Consolidation") == 1


def test_auc_hand_computed_with_ties() -> None:
    # pairs (pos, neg): pos {0.8, 0.4}, neg {0.4, 0.1} → (0.8>0.4)1 + (0.8>0.1)1 + (0.4=0.4)0.5 + (0.4>0.1)1 = 3.5/4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == pytest.approx(0.875)
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([0, 1, 1]), np.array([0.9, 0.1, 0.2])) == pytest.approx(0.0)
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_soft_dice_hand_computed() -> None:
    m = np.array([[1, 1], [0, 0]])
    assert soft_dice(m.astype(float), m) == pytest.approx(1.0)
    s = np.array([[1.0, 0.5], [0.5, 0.0]])
    # 2 * (1 + 0.5) / (2 + 2) = 0.75
    assert soft_dice(s, m) == pytest.approx(0.75)
    assert soft_dice(np.ones((2, 2)), m) == pytest.approx(2 * 2 / (4 + 2))
    assert math.isnan(soft_dice(np.zeros((2, 2)), np.zeros((2, 2))))
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert (minmax(np.full(3, 7.0)) == 0).all()
