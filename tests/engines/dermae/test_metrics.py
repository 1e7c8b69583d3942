"""Metrics against hand-computed values; the split keeps same-lesion pairs together."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.dermae.metrics import auc_per_class, balanced_accuracy, confusion, f1_per_class, macro_auc


def test_confusion_balanced_accuracy_f1_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    p = np.array([0, 2, 1, 1, 2, 2, 2, 2, 0, 2])
    m = confusion(y, p, 3)
    assert m.tolist() == [[1, 0, 1], [0, 2, 1], [1, 0, 4]]
    # recalls 1/2, 2/3, 4/5
    assert balanced_accuracy(y, p, 3) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    # class 0: TP 1, FP 1, FN 1 → 2/4; class 1: TP 2, FP 0, FN 1 → 4/5; class 2: TP 4, FP 2, FN 1 → 8/11
    assert f1_per_class(y, p, 3) == pytest.approx([0.5, 0.8, 8 / 11])


def test_f1_nan_for_absent_class_and_balanced_accuracy_skips_it() -> None:
    y, p = np.array([0, 0, 1]), np.array([0, 1, 1])
    f1 = f1_per_class(y, p, 3)
    assert np.isnan(f1[2]) and f1[0] == pytest.approx(2 / 3)
    assert balanced_accuracy(y, p, 3) == pytest.approx((0.5 + 1.0) / 2)


def test_macro_auc_one_vs_rest_by_hand() -> None:
    y = np.array([0, 1, 2, 0])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3], [0.4, 0.3, 0.3]])
    # class 0: positives 0.8, 0.4; negatives 0.3, 0.5 → pairs won: (0.8>0.3, 0.8>0.5, 0.4>0.3) = 3 of 4
    # class 1: positive 0.6 vs 0.1, 0.2, 0.3 → 1; class 2: positive 0.3 vs 0.1, 0.1, 0.3 → (1 + 1 + 0.5)/3
    a = auc_per_class(y, probs)
    assert a == pytest.approx([0.75, 1.0, 2.5 / 3])
    assert macro_auc(y, probs) == pytest.approx((0.75 + 1.0 + 2.5 / 3) / 3)


def test_auc_is_the_shared_implementation() -> None:
    import engines.dermae.metrics as dm
    import engines.multires_cxr.metrics as mm

    assert dm.roc_auc is mm.roc_auc


def test_committed_split_is_fixed_and_keeps_same_lesion_together() -> None:
    from engines.dermae.data import split_units
    from engines.dermae.prepare import SAME_LESION, SPLIT_FILE

    split = json.loads(SPLIT_FILE.read_text())
    train, test = set(split["train"]), set(split["test"])
    assert not train & test and len(train) + len(test) == 600
    a, b = SAME_LESION[0]
    assert (a in test) == (b in test)
    # the splitter joins pairs: force the pair into a tiny stratum and check both land together
    ids = [f"x{i}" for i in range(10)] + [a, b]
    labels = np.array([0] * 10 + [1, 1])
    for seed in range(5):
        t = split_units(ids, labels, SAME_LESION, 0.5, seed)
        assert t[10] == t[11]
