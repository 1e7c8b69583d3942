"""A radiologist's story in the window: open a chest radiograph, run an engine from the Engines panel,
see class scores and new heatmap layers with colour bars; cancel; errors in plain words."""

from __future__ import annotations

from engines import registry
from tests.engines.toy_engine import ToyEngine


def cxr(shared_data):
    return sorted((shared_data / "cxr/images").glob("*.png"))[0]


def test_multires_cxr_from_the_engines_panel(window, qtbot, shared_data):
    assert window.open_paths([cxr(shared_data)])
    panel = window.engines.engines_panel
    ids = [e.id for e in panel.engines]
    assert "multires_cxr" in ids
    panel.list.setCurrentRow(ids.index("multires_cxr"))
    assert "not for clinical use" in panel.card.toPlainText()
    before = len(window.document.layers)
    panel.run_button.click()
    qtbot.waitUntil(lambda: len(window.document.layers) == before + 3, timeout=60_000)
    names = [la.name for la in window.document.layers[before:]]
    assert all(n.startswith("Multi-resolution CXR (LSE-LBA) · saliency · ") for n in names)
    ranked = window.engines.results_panel.ranked_names()
    assert len(ranked) == 5  # the findings the shared CXR data supports (engines/common/cxr_findings.py)
    assert [n.split(" · ")[-1] for n in names] == ranked[:3]  # overlays for the top 3 findings
    assert [la.visible for la in window.document.layers[before:]] == [True, False, False]
    view = window.study_view.views["native"]
    assert len(view.annotations.colorbars) == 1  # the top finding's map; the others are one click away
    # running again adds new layers, never replaces
    panel.run_button.click()
    qtbot.waitUntil(lambda: len(window.document.layers) == before + 6, timeout=60_000)
    assert len({la.name for la in window.document.layers}) == len(window.document.layers)


def test_cancel_adds_nothing_and_errors_are_plain(window, qtbot, shared_data):
    toy = ToyEngine(delay_s=0.2)
    with registry.registered(toy):
        window.open_paths([shared_data / "brain_mri/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz"])
        assert toy.id in [e.id for e in window.engines.engines_panel.engines]
        n = len(window.document.layers)
        job = window.engines.run(toy)
        qtbot.waitUntil(lambda: window.engines.runner.job(job).state.value == "running", timeout=10_000)
        window.engines.job_status.cancel.click()
        qtbot.waitUntil(window.engines.runner.is_idle, timeout=5_000)
        assert len(window.document.layers) == n
    assert not window.engines.job_status.bar.isVisible()
    # an engine error: plain message, details behind the button, app alive
    with registry.registered(ToyEngine(fail="engine_error")) as bad:
        window.engines.set_document(window.document)
        window.engines.run(bad)
        qtbot.waitUntil(window.engines.runner.is_idle, timeout=10_000)
    status = window.engines.job_status
    assert status.label.text().startswith("⚠") and status.details.isVisible()
    assert "Traceback" not in status.label.text()
    assert len(window.document.layers) == n


def test_query_goes_to_the_query_engine_and_names_the_layer(window, qtbot, shared_data):
    """The real routing, nothing mocked: a chest radiograph's query goes to RadZero, an MR volume's to HLIP."""
    window.open_paths([cxr(shared_data)])
    bar = window.engines.query_bar
    assert bar.box.isEnabled() and window.engines.query_engine(window.document).id == "radzero"
    assert "RadZero" in bar.target.text()
    before = len(window.document.layers)
    bar.box.setEditText("  right   pleural effusion ")
    bar.submit()
    qtbot.waitUntil(lambda: len(window.document.layers) > before and window.engines.runner.is_idle(), timeout=60_000)
    (layer,) = window.document.layers[before:]
    assert layer.name.startswith("RadZero") and layer.name.endswith("· right pleural effusion")
    assert window.settings.get("query_history")[0] == "right pleural effusion"
    assert "right pleural effusion" in " ".join(window.engines.results_panel.ranked_names())

    window.open_paths([shared_data / "brain_mri/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz"])
    assert window.engines.query_engine(window.document).id == "hlip" and "HLIP" in bar.target.text()


def test_query_bar_without_query_engine_is_disabled(window, shared_data):
    photo = sorted((shared_data / "dermoscopy/images").glob("*.jpg"))[0]  # no engine grounds text on photos
    window.open_paths([photo])
    assert not window.engines.query_bar.box.isEnabled()
    assert "no query engine" in window.engines.query_bar.target.text()


def test_user_weights_from_preferences(window, qtbot, shared_data, tmp_path):
    """A weights file chosen in Preferences is used; a wrong one fails with a message naming the file."""
    bad = tmp_path / "not_weights.safetensors"
    bad.write_bytes(b"\x80\x04 pickled, not safetensors")
    window.settings.set("weights", {"multires_cxr": str(bad)})
    window.open_paths([cxr(shared_data)])
    n = len(window.document.layers)
    engine = next(e for e in window.engines.engines_panel.engines if e.id == "multires_cxr")
    window.engines.run(engine)
    qtbot.waitUntil(window.engines.runner.is_idle, timeout=30_000)
    assert len(window.document.layers) == n
    assert "not_weights.safetensors" in window.engines.job_status.label.text()


def test_multi_scan_study_goes_to_hlip_together(window, qtbot, shared_data):
    """FLAIR opened, T1c added to the study: HLIP reads both scans as one study (a map per scan)."""
    case = shared_data / "brain_mri/brats_2013_pat0005_1"
    assert window.open_paths([case / "Flair_subtrMeanDivStd.nii.gz"])
    assert window.add_image([case / "T1c_subtrMeanDivStd.nii.gz"])
    doc = window.document
    assert len(window.engines.study_scans(doc)) == 2
    assert "HLIP" in window.engines.query_bar.target.text()
    n = len(doc.layers)
    window.engines.query("enhancing tumour")
    qtbot.waitUntil(window.engines.runner.is_idle, timeout=120_000)
    new = [la.name for la in doc.layers[n:]]
    assert len(new) == 2 and all("enhancing tumour" in name for name in new), (new, window.engines.job_status.label.text())
