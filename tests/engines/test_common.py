"""engines.common: the pieces the five engines share (geometry, config dicts, image checks, vocab tokenizers,
the train/evaluate/card scaffold) and the run template's one out-of-memory policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.base import EngineError, EngineResult, RunState, ShippedWeightsEngine, Step
from engines.common import card as scaffold
from engines.common.config import DictConfig
from engines.common.geometry import grid_to_input_matrix, map_to_image_matrix, token_to_voxel_matrix
from engines.common.image import radiograph01, unit_map
from engines.common.text import VocabTokenizer, find_vocab, vocab_candidates
from engines.common.train import find_npz, finish_run
from viewer.model.volume import Volume


def test_grid_matrix_puts_cell_centres_on_the_pixels_they_cover() -> None:
    m = map_to_image_matrix((4, 8), (40, 32))  # rows, cols → 4 px per map column, 10 per map row
    assert m @ [0, 0, 0, 1] == pytest.approx([1.5, 4.5, 0, 1])  # centre of the first 4×10 block
    assert m @ [7.5, 3.5, 0, 1] == pytest.approx([31.5, 39.5, 0, 1])  # grid edge on image edge
    t = token_to_voxel_matrix((2, 4, 4), (10, 64, 32))
    assert t @ [0, 0, 0, 1] == pytest.approx([3.5, 7.5, 2.0, 1])
    with pytest.raises(ValueError):
        grid_to_input_matrix((4, 4), (8, 8, 8))


@dataclass
class _Cfg(DictConfig):
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)
    extra: dict[str, str] = field(default_factory=dict)


def test_config_dicts_round_trip_through_json_and_ignore_unknown_keys() -> None:
    cfg = _Cfg(sizes=(3, 4), extra={"a": "b"})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["sizes"] == [3, 4]
    assert _Cfg.from_dict({**d, "added_later": 1}) == cfg


def test_radiograph_checks_are_plain_errors() -> None:
    ok = radiograph01(np.arange(64 * 64, dtype=np.float32).reshape(64, 64), False, "T", 32)
    assert ok.dtype == np.float32 and ok.min() == 0 and ok.max() == 1
    for a, words in ((np.zeros((64, 64)), "constant"), (np.ones((16, 64)), "too small"),
                     (np.full((64, 64), np.nan), "NaN"), (np.ones((2, 64, 64)), "one 2D radiograph")):
        with pytest.raises(EngineError, match=words):
            radiograph01(a, False, "T", 32)
    norm, lo, hi = unit_map(np.array([[2.0, 4.0]]))
    assert norm.tolist() == [[0.0, 1.0]] and (lo, hi) == (2.0, 4.0)


def test_vocab_file_is_found_beside_the_weights_and_read_offline(tmp_path: Path) -> None:
    w = tmp_path / "model.safetensors"
    assert vocab_candidates(w) == [tmp_path / "model.vocab.txt", tmp_path / "vocab.txt"] and find_vocab(w) is None
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "there", "is",
                                                   "glioma", "."]) + "\n")
    tok = VocabTokenizer(find_vocab(w), "bert", max_length=16, vocab_size=30)
    ids, mask = tok(["There is glioma.", "is"])
    assert ids.tolist() == [[2, 5, 6, 7, 8, 3], [2, 6, 3, 0, 0, 0]] and mask[1].tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(EngineError, match="9 entries but the text tower has 5"):
        VocabTokenizer(tmp_path / "vocab.txt", "bert", max_length=16, vocab_size=5)


def test_train_and_card_scaffold(tmp_path: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match=r"run engines\.toy\.prepare"):
        find_npz(tmp_path, 64, "train", "toy")
    (tmp_path / "64").mkdir()
    (tmp_path / "64" / "train.npz").write_bytes(b"")
    assert find_npz(tmp_path, 64, "train", "toy") == tmp_path / "64" / "train.npz"
    s = finish_run({"steps": 2}, [1.0, 0.5], tmp_path)
    assert s["losses"] == [1.0, 0.5] and json.loads((tmp_path / "train_summary.json").read_text()) == {"steps": 2}

    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "train_log.jsonl").write_text("{}\n")
    scaffold.ship(run, out)
    res = scaffold.record_evaluation({"auc": 0.5}, out / "model.safetensors", "toy", "data_prepared/toy")
    assert res["command"].startswith("python -m engines.toy.evaluate --weights ") and (out / "eval.json").is_file()
    card = {"title": "Toy", "paper": "P", **scaffold.weights_entry(out / "model.safetensors")}
    md = [*scaffold.md_head(card, "toy"), *scaffold.md_licence_limits("CC0", ["tiny"])]
    scaffold.write_card(out, card, md, "table")
    assert json.loads((out / "card.json").read_text())["size_bytes"] == 7
    text = (out / "card.md").read_text()
    assert "**research demo weights, not for clinical use**" in text and "- tiny" in text
    assert capsys.readouterr().out.startswith("table\n")


class _Oom(ShippedWeightsEngine):
    """Runs the template; the forward step runs out of CUDA memory once."""

    id, title, paper, modalities, dims = "oom_toy", "OOM toy", "-", ("*",), (2,)
    weights_file = "none.safetensors"

    def __init__(self) -> None:
        super().__init__(weights=Path("none.safetensors"))
        self.devices: list[str] = []

    def load_weights(self, path: Path, expected_sha256: str | None) -> torch.nn.Module:
        raise AssertionError("not called")

    def load(self) -> torch.nn.Module:
        return torch.nn.Identity()

    def preprocess(self, state: RunState) -> torch.Tensor:
        return torch.from_numpy(state.volume.array)

    def forward(self, state: RunState, device: torch.device, step: Step) -> torch.Tensor:
        self.devices.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return state.inputs * 2

    def postprocess(self, state: RunState) -> EngineResult:
        return EngineResult(scores={"sum": float(state.outputs.sum())})


def test_template_forward_falls_back_to_the_cpu_once_with_a_note(monkeypatch) -> None:
    import engines.device

    monkeypatch.setattr(engines.device, "cuda_available", lambda: True)
    engine = _Oom()
    steps: list[str] = []
    res = engine.run(Volume(np.ones((4, 4), np.float32), modality="OT"), device="cuda",
                     progress=lambda f, m="": steps.append(m))
    assert engine.devices == ["cuda", "cpu"] and res.scores == {"sum": 32.0}
    assert res.notes[0] == engines.device.OOM_NOTICE
    assert steps[0] == "checking the input" and steps[-1] == "done"
