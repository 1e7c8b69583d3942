"""Weights: safetensors only, hash checks, key/shape messages, model cards, and the safe converter."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engines.base import EngineError
from engines.convert import convert_checkpoint
from engines.weights import (
    CLINICAL_SENTENCE,
    ModelCard,
    load_into,
    load_safetensors,
    load_weights,
    read_header,
    resolve_weights,
    sha256_file,
)
from tests.engines.toy_engine import ToyEngine, ToyNet


def _fp16_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}


@pytest.fixture
def toy_file(tmp_path) -> Path:
    p = tmp_path / "toy.safetensors"
    save_file(_fp16_state(ToyNet()), str(p), metadata={"format": "pt"})
    return p


def test_fp16_file_loads_strict_and_is_cast_to_model_dtype(toy_file):
    sd = load_safetensors(toy_file)
    assert sd["conv.weight"].dtype == torch.float16
    model = ToyNet()
    torch.nn.init.zeros_(model.conv.weight)
    assert load_into(model, sd, toy_file) == ([], [])
    assert model.conv.weight.dtype == torch.float32
    assert model.conv.weight[0, 0, 1, 1].item() == pytest.approx(4.0)
    ToyEngine(weights=toy_file)  # the engine's own path


def test_sha256_match_and_mismatch(toy_file):
    good = sha256_file(toy_file)
    assert load_safetensors(toy_file, expected_sha256=good.upper())
    bad = "0" * 64
    with pytest.raises(EngineError) as err:
        load_safetensors(toy_file, expected_sha256=bad)
    msg = str(err.value)
    assert str(toy_file) in msg and bad[:16] in msg and good[:16] in msg and "mismatch" in msg


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
def test_pickled_checkpoint_renamed_safetensors_is_refused(tmp_path, kind):
    p = tmp_path / "x.safetensors"
    sd = ToyNet().state_dict()
    if kind == "zip":
        torch.save(sd, p)
    elif kind == "legacy":
        torch.save(sd, p, _use_new_zipfile_serialization=False)
    else:
        p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(EngineError) as err:
        load_safetensors(p)
    msg = str(err.value)
    assert msg.startswith(f"{p} is not a safetensors file (it looks like a pickle/zip checkpoint)")
    assert "lucent convert-weights" in msg


@pytest.mark.parametrize("content", [b"", b"abc", b"\xff" * 64, b"\x10\x00\x00\x00\x00\x00\x00\x00[1, 2, 3]     "])
def test_garbage_is_refused_without_crashing(tmp_path, content):
    p = tmp_path / "g.safetensors"
    p.write_bytes(content)
    with pytest.raises(EngineError, match="not a safetensors file"):
        load_safetensors(p)


def test_missing_file(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        load_safetensors(tmp_path / "nope.safetensors")


def test_missing_unexpected_and_shape_messages_name_the_key(toy_file):
    sd = load_safetensors(toy_file)
    missing = {k: v for k, v in sd.items() if k != "conv.bias"}
    with pytest.raises(EngineError, match=r"toy\.safetensors does not fit the model: missing key 'conv\.bias'"):
        load_into(ToyNet(), missing, toy_file)
    extra = {**sd, "head.weight": torch.zeros(2, 3)}
    with pytest.raises(EngineError, match=r"unexpected key 'head\.weight' \(shape \(2, 3\)\)"):
        load_into(ToyNet(), extra, toy_file)
    wrong = {**sd, "conv.weight": torch.zeros(1, 1, 5, 5)}
    with pytest.raises(EngineError) as err:
        load_into(ToyNet(), wrong, toy_file)
    assert "'conv.weight' has shape (1, 1, 5, 5) in the file, but the model expects (1, 1, 3, 3)" in str(err.value)
    # non-strict: missing keys allowed, shapes still checked
    assert load_into(ToyNet(), missing, toy_file, strict=False) == (["conv.bias"], [])


def _write_card(root: Path, weights: Path, sha: str | None = None) -> None:
    d = root / "toy"
    d.mkdir(parents=True)
    shutil.copy(weights, d / "model.safetensors")
    card = {"engine": "toy", "weights_file": "model.safetensors", "sha256": sha or sha256_file(weights),
            "data": "none", "training": {"steps": 0, "hardware": "none", "command": "n/a"},
            "metrics": {"command": "n/a"}, "licence": "CC0",
            "intended_use": "Research demo weights, not for clinical use.", "limits": ["toy"]}
    (d / "card.json").write_text(json.dumps(card))


def test_model_card_resolve_and_user_override(tmp_path, toy_file):
    root = tmp_path / "weights"
    _write_card(root, toy_file)
    card = ModelCard.load("toy", root)
    assert card.problems() == []
    assert "model card" in card.text() and "not for clinical use" in card.text()
    path, c = resolve_weights("toy", root=root)
    assert path == root / "toy" / "model.safetensors" and c is not None and c.sha256 == card.sha256
    sd, _, _ = load_weights("toy", root=root)
    assert set(sd) == set(ToyNet().state_dict())
    # a user file overrides the shipped one and is not checked against the card's hash
    user = tmp_path / "mine.safetensors"
    save_file({k: v + 1 for k, v in _fp16_state(ToyNet()).items()}, str(user))
    assert resolve_weights("toy", user, root=root)[0] == user
    assert load_weights("toy", user, root=root)[1] == user
    with pytest.raises(EngineError, match="was not found"):
        resolve_weights("toy", tmp_path / "gone.safetensors", root=root)
    with pytest.raises(EngineError, match="ships no weights"):
        resolve_weights("other", root=root)


def test_shipped_file_with_wrong_hash_is_refused(tmp_path, toy_file):
    root = tmp_path / "weights"
    _write_card(root, toy_file, sha="ab" * 32)
    with pytest.raises(EngineError, match="SHA-256 mismatch"):
        load_weights("toy", root=root)


def test_shipped_cards_are_complete():
    from engines.weights import weights_root

    cards = sorted(p.parent.name for p in weights_root().glob("*/card.json"))
    for engine_id in cards:
        card = ModelCard.load(engine_id)
        assert card.engine == engine_id
        assert card.problems() == [], (engine_id, card.problems())
        assert CLINICAL_SENTENCE in card.intended_use.lower()
        assert sha256_file(card.weights_path) == card.sha256, f"{engine_id}: shipped file differs from its card"


def test_converter_round_trip_with_wrapper_and_prefix(tmp_path, capsys):
    model = ToyNet()
    with torch.no_grad():
        model.conv.weight.mul_(3)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    out = tmp_path / "out.safetensors"
    from engines import cli

    assert cli.main(["convert-weights", str(ckpt), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {sha256_file(out)}" in printed
    assert read_header(out)["__metadata__"]["converted_from"] == "ckpt.pt"
    fresh = ToyNet()
    load_into(fresh, load_safetensors(out), out, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_converter_fp16_and_explicit_prefix(tmp_path):
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"model": {"net.conv.weight": torch.ones(1, 1, 3, 3), "net.conv.bias": torch.zeros(1),
                          "net.gain": torch.tensor(4.0), "note": "hi"}}, ckpt)
    rep = convert_checkpoint(ckpt, tmp_path / "o.safetensors", strip_prefix="net.", fp16=True)
    assert rep.unwrapped == ["model"] and rep.skipped == ["note"] and rep.tensors == 3
    sd = load_safetensors(rep.path)
    assert sd["conv.weight"].dtype == torch.float16
    load_into(ToyNet(), sd, rep.path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_converter_refuses_arbitrary_pickles(tmp_path, capsys):
    ckpt = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "obj": _Evil()}, ckpt)
    out = tmp_path / "evil.safetensors"
    with pytest.raises(EngineError, match="weights_only=True"):
        convert_checkpoint(ckpt, out)
    assert "pwned" not in capsys.readouterr().out and not out.exists()
    from engines import cli

    assert cli.main(["convert-weights", str(ckpt), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights_only=True" in err


def test_converter_rejects_safetensors_input_and_bad_output(tmp_path, toy_file):
    with pytest.raises(EngineError, match="already a safetensors file"):
        convert_checkpoint(toy_file, tmp_path / "again.safetensors")
    ckpt = tmp_path / "c.pt"
    torch.save(ToyNet().state_dict(), ckpt)
    with pytest.raises(EngineError, match="must end in .safetensors"):
        convert_checkpoint(ckpt, tmp_path / "out.pt")
