"""An engine that does not beat its baseline is marked "not validated" in the Engines and Results docks."""

from __future__ import annotations

import json

import pytest

from app.panels.engines_panel import NOT_VALIDATED, EnginesPanel
from app.panels.results_panel import ResultsPanel
from engines import registry
from engines.common.validation import compare, mean_of


def _engine():
    """A fresh multires_cxr engine whose default weights (and card) lie in ``LUCENT_WEIGHTS_DIR``."""
    return type(registry.get("multires_cxr"))()


def _card(tmp_path, engine_better: bool) -> None:
    good, bad = [0.9, 0.85, 0.88, 0.92, 0.87], [0.3, 0.35, 0.32, 0.31, 0.36]
    eng, base = (good, bad) if engine_better else (bad, good)
    validation = compare("Dice", "threshold", mean_of(eng), mean_of(base), 5).to_dict()
    (tmp_path / "multires_cxr").mkdir()
    (tmp_path / "multires_cxr" / "card.json").write_text(json.dumps({"engine": "multires_cxr", "validation": validation}))


@pytest.mark.parametrize("better", [True, False])
def test_engines_and_results_docks_say_whether_scores_are_validated(qtbot, tmp_path, monkeypatch, better):
    monkeypatch.setenv("LUCENT_WEIGHTS_DIR", str(tmp_path))
    _card(tmp_path, better)
    engine = _engine()
    assert engine.validation()[0] is better

    engines = EnginesPanel(lambda e: "card text")
    qtbot.addWidget(engines)
    engines.set_engines([engine], "CT volume")
    assert (NOT_VALIDATED in engines.list.item(0).text()) is not better
    assert engines.card.toPlainText().startswith("Validated" if better else "Not validated")

    results = ResultsPanel()
    qtbot.addWidget(results)
    results.show_scores("Toy edges", {"edge": 0.7, "flat": 0.3}, ["demo"], engine.validation())
    assert ("not validated" in results.title.text()) is not better
    assert ("below the baseline" in results.notes.text()) is not better
    assert results.validated is better


def test_engine_without_comparison_or_with_other_weights_is_not_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("LUCENT_WEIGHTS_DIR", str(tmp_path))
    assert _engine().validation() == (False, "no baseline comparison in the model card - demo only")
    _card(tmp_path, True)
    other = tmp_path / "mine.safetensors"
    engine = _engine()
    engine.weights = other
    validated, line = engine.validation()
    assert not validated and "mine.safetensors" in line


def test_a_damaged_card_lists_the_engine_as_not_validated(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCENT_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "multires_cxr").mkdir()
    (tmp_path / "multires_cxr" / "card.json").write_bytes(b'{"validation": {"verdict": "bet')
    engine = _engine()
    assert engine.validation() == (False, "the model card cannot be read - not validated")
    engines = EnginesPanel(lambda e: "card text")
    qtbot.addWidget(engines)
    engines.set_engines([engine], "radiograph")
    assert NOT_VALIDATED in engines.list.item(0).text()
