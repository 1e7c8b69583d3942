"""Official checkpoints end to end, without the network: RadZero and HLIP with the authors' own text towers.

A state dict is built from the authors' key/shape lists in ``../shared/reference`` (one tensor at a time from a
seeded generator, small values — the real towers are ~200 M parameters each, ~0.4 GB in half precision), saved in
the authors' file layout, converted with the project's converter (the tokenizer vocabulary beside it travels
with it), loaded strictly by the engine and run once on a real image. Checkpoints that do not fit are refused with
a message that names the file and the key (or the missing vocabulary).
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engines.base import EngineError
from engines.convert import convert_checkpoint
from engines.hlip.configs import TINY
from engines.hlip.convert import convert as convert_hlip
from engines.hlip.engine import HLIPEngine
from engines.hlip.model import HLIP, HLIPConfig
from engines.hlip.weights_io import save_weights as save_hlip
from engines.radzero.engine import RadZeroEngine
from engines.radzero.model import CONFIGS as RADZERO_CONFIGS
from engines.radzero.model import RadZero, RadZeroConfig
from engines.radzero.weights_io import save_weights as save_radzero
from tests.conftest import SHARED_DATA
from viewer.model.volume import Volume

REFERENCE = SHARED_DATA.parent / "reference"
HLIP_CONFIG = "clip_vit_base_multiscan_h2_token1176"  # the BrainMRI220K Drive release (8×16×16, scan + study)
WORDS = ("there", "is", "no", "this", "mri", "ct", "study", "shows", "glioma", "consolidation", "pleural",
         "effusion", "significant", "abnormalities", "intracranial", "hemorrhage", "acute", "stroke")


# ---- helpers -----------------------------------------------------------------------------------------------
def reference(name: str) -> dict:
    """A key list of ``../shared/reference`` (a missing file fails the test: it is part of the shared data)."""
    path = REFERENCE / name
    assert path.is_file(), f"{path} is missing: the official-checkpoint tests need ../shared/reference"
    return json.loads(path.read_text())


def seeded_state_dict(shapes: dict[str, list[int]], seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One tensor per key, made one at a time from a seeded generator: norms and LayerScale ≈ 1, temperatures at
    the authors' initial values, everything else N(0, 0.02²)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "loss_temperature":
            t = torch.full(shape, math.log(0.07))
        elif leaf in ("logit_scale", "logit_bias"):
            t = torch.full(shape, math.log(1 / 0.07))
        elif leaf == "lambda1" or (leaf == "weight" and "norm" in key.lower()):
            t = 1 + 0.02 * torch.randn(shape, generator=g)
        else:
            t = 0.02 * torch.randn(shape, generator=g)
        sd[key] = t.to(dtype)
    return sd


def write_vocab(path: Path, kind: str) -> Path:
    """A small WordPiece vocabulary file (special tokens of BERT or MPNet, a few words, letters and ##letters)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if kind == "bert" else ["<s>", "<pad>", "</s>", "<unk>",
                                                                                      "[UNK]"]
    letters = list(string.ascii_lowercase)
    tokens = [*specials, *WORDS, ".", ":", ",", *letters, *(f"##{c}" for c in letters)]
    path.write_text("\n".join([*tokens, *(["<mask>"] if kind == "mpnet" else [])]) + "\n", encoding="utf-8")
    return path


def cxr_volume() -> Volume:
    from PIL import Image

    with Image.open(SHARED_DATA / "cxr" / "images" / "ARDSSevere.png") as im:
        a = np.asarray(im.convert("L"), dtype=np.float32)
    return Volume(a, affine=np.diag([0.2, 0.2, 1.0, 1.0]), modality="CR")


def flair_volume() -> Volume:
    from viewer.io.nifti import read_nifti

    return read_nifti(SHARED_DATA / "brain_mri" / "brats_2013_pat0002_1" / "Flair_subtrMeanDivStd.nii.gz")


# ---- full size, end to end ---------------------------------------------------------------------------------
def test_radzero_official_checkpoint_converts_loads_strictly_and_grounds_a_query(tmp_path: Path) -> None:
    shapes = reference("radzero_state_dict_keys.json")
    hf = tmp_path / "Deepnoid-RadZero"  # the authors' folder: weights (bf16, as their Trainer saves) + tokenizer
    hf.mkdir()
    torch.save(seeded_state_dict(shapes, seed=21, dtype=torch.bfloat16), hf / "pytorch_model.bin")
    write_vocab(hf / "vocab.txt", "mpnet")
    out = tmp_path / "radzero_official.safetensors"
    rep = convert_checkpoint(hf / "pytorch_model.bin", out)
    assert rep.tensors == 461 and rep.vocab == tmp_path / "radzero_official.vocab.txt"

    engine = RadZeroEngine(weights=out)
    model = engine.load()  # no config metadata → the paper config; strict
    assert model.config.name == "paper" and model.config.text_model == "mpnet"
    assert set(model.state_dict()) == set(shapes)
    vol = cxr_volume()
    res = engine.run(vol, "consolidation")
    (ov,) = res.overlays
    h, w = vol.array.shape
    assert ov.volume.array.shape == (min(h, 4 * 37), min(w, 4 * 37))  # the 37×37 patch grid at 518 px, upsampled
    sim = ov.volume.array
    # 0 outside the lung fields (radzero gates its map since issue 18), sigmoid(cos/τ) in (0, 1) inside
    assert np.isfinite(sim).all() and sim.min() >= 0 and 0 < sim.max() < 1
    assert 0.0 <= res.scores["consolidation"] <= 1.0
    t = engine.text_embeddings(["There is consolidation."])
    assert t.shape == (1, 768)  # the authors' MPNet width, not MiniLM's 384


def test_hlip_official_checkpoint_converts_loads_strictly_and_scores_a_study(tmp_path: Path) -> None:
    shapes = reference("hlip_state_dict_keys.json")[HLIP_CONFIG]
    drive = tmp_path / "drive"  # the Drive file: a training checkpoint with DDP's "module." prefix
    drive.mkdir()
    sd = seeded_state_dict(shapes, seed=22, dtype=torch.float16)
    torch.save({"epoch": 20, "name": HLIP_CONFIG, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
               drive / "brainmri_vit_base_8x16x16.pt")
    del sd
    write_vocab(drive / "vocab.txt", "bert")  # BiomedBERT's vocab.txt, put beside it by the user
    out = tmp_path / "hlip_brainmri.safetensors"
    info = convert_hlip(drive / "brainmri_vit_base_8x16x16.pt", out, HLIP_CONFIG)
    assert info["tensors"] == len(shapes) and info["vocab"] == str(tmp_path / "hlip_brainmri.vocab.txt")

    engine = HLIPEngine(weights=out)
    model = engine.load()
    assert model.config.name == HLIP_CONFIG and model.config.text == "bert"
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    res = engine.run(flair_volume(), "glioma")
    assert set(engine.classes) <= set(res.scores)
    probs = np.array([res.scores[c] for c in engine.classes])
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0, abs=1e-4)
    (ov,) = res.overlays
    assert ov.volume.array.shape == (48, 224, 224)  # the 6×14×14 token map upsampled to the model grid
    assert np.isfinite(ov.volume.array).all()


# ---- clear refusals ----------------------------------------------------------------------------------------
def test_radzero_checkpoint_that_does_not_fit_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "not_radzero.safetensors"  # no config metadata → taken as the paper config
    save_file({"vision_model.embeddings.cls_token": torch.zeros(1, 1, 768)}, str(path))
    with pytest.raises(EngineError, match=r"not_radzero\.safetensors does not fit the model: missing key"):
        RadZeroEngine(weights=path).load()

    demo = tmp_path / "demo_wrong_shape.safetensors"
    save_radzero(RadZero(RADZERO_CONFIGS["demo"]), demo)
    sd = load_file(str(demo))
    sd["loss_fns.RadZeroLoss.layer_norm.weight"] = torch.ones(7)
    from safetensors import safe_open

    with safe_open(str(demo), framework="pt") as f:
        meta = f.metadata()
    save_file(sd, str(demo), metadata=meta)
    with pytest.raises(EngineError, match=r"demo_wrong_shape\.safetensors: key 'loss_fns\.RadZeroLoss\.layer_norm"
                                          r"\.weight' has shape \(7,\) in the file, but the model expects \(192,\)"):
        RadZeroEngine(weights=demo).load()


def test_radzero_text_side_that_cannot_be_fed_is_refused(tmp_path: Path) -> None:
    wide = RadZeroConfig(name="external-512", text_dim=512)  # sentence vectors the offline encoder cannot give
    path = tmp_path / "wide_text.safetensors"
    save_radzero(RadZero(wide), path)
    with pytest.raises(EngineError, match=r"wide_text\.safetensors expects 512-d sentence vectors.*384-d"):
        RadZeroEngine(weights=path).load()

    small_mpnet = RadZeroConfig(name="mpnet-small", text_model="mpnet", text_dim=192, text_projection=False,
                                mpnet={"vocab": 100, "positions": 66, "layers": 1, "heads": 3, "ffn": 64,
                                       "buckets": 32, "pad_id": 1})
    path = tmp_path / "own_tower.safetensors"
    save_radzero(RadZero(small_mpnet), path)
    with pytest.raises(EngineError, match=r"own_tower\.safetensors has its own text tower \(MPNet.*own_tower\.vocab"
                                          r"\.txt"):
        RadZeroEngine(weights=path).load()
    write_vocab(tmp_path / "vocab.txt", "mpnet")  # the user's checkpoint folder holds the vocabulary
    res = RadZeroEngine(weights=path).run(cxr_volume(), "pleural effusion")
    assert np.isfinite(res.overlays[0].volume.array).all()


def test_hlip_checkpoint_that_does_not_fit_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    src = tmp_path / "other_model.pt"
    torch.save({"state_dict": {"module.visual.trunk.cls_token": torch.zeros(1, 1, 768)}}, src)
    with pytest.raises(EngineError, match=r"other_model\.pt does not fit the model: missing key"):
        convert_hlip(src, tmp_path / "out.safetensors", HLIP_CONFIG)


def test_hlip_bert_tower_without_vocabulary_is_refused_then_runs_with_it(tmp_path: Path) -> None:
    cfg = HLIPConfig(**{**TINY, "name": "tiny-bert", "text": "bert", "text_width": 32, "bert_layers": 1,
                        "bert_heads": 2, "bert_vocab": 100, "bert_positions": 64})
    path = tmp_path / "tiny_bert.safetensors"
    save_hlip(HLIP(cfg), path, cfg)
    with pytest.raises(EngineError, match=r"tiny_bert\.safetensors has its own text tower \(BERT.*vocab\.txt"):
        HLIPEngine(weights=path).load()
    write_vocab(tmp_path / "tiny_bert.vocab.txt", "bert")
    engine = HLIPEngine(weights=path)
    vol = Volume(np.random.default_rng(0).random((20, 40, 40), dtype=np.float32), modality="MR")
    res = engine.run(vol, "glioma")
    assert sum(res.scores[c] for c in engine.classes) == pytest.approx(1.0, abs=1e-4)
