"""HLIP model: attention scopes, prefix regrouping, official key list (strict), CLIP loss, metrics, shapes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.hlip.configs import PAPER_CONFIGS, PAPER_DEFAULT, get_config
from engines.hlip.model import HLIP, Block, HLIPConfig, clip_loss, regroup_prefix, resample_posemb, scope_ids
from engines.weights import load_into

torch.set_num_threads(1)
REF = Path(__file__).resolve().parents[4] / "shared" / "reference" / "hlip_state_dict_keys.json"


def _one_level_trunk(level: str) -> HLIP:
    """Tiny model whose single block runs at ``level``."""
    cfg = HLIPConfig(name="t", width=16, depth=1, heads=2, input_size=(16, 32, 32), patch_size=(8, 16, 16),
                     slice_blocks=(0,) if level == "slice" else (), scan_blocks=(0,) if level == "scan" else (),
                     study_blocks=(0,) if level == "study" else (), embed_dim=8)
    torch.manual_seed(0)
    return HLIP(cfg).eval()


@pytest.mark.parametrize("level", ["slice", "scan", "study"])
def test_tokens_attend_only_within_their_scope(level: str) -> None:
    """Perturb one patch token: after one block at ``level`` exactly the tokens of its scope change."""
    model = _one_level_trunk(level)
    trunk = model.visual.trunk
    n, grid = 2, (2, 2, 2)
    torch.manual_seed(1)
    x = torch.randn(1, n, *grid, 16)
    hit = (1, 1, 0, 1)  # scan 1, depth 1, row 0, col 1
    x2 = x.clone()
    x2[(0, *hit)] += torch.randn(16)
    with torch.no_grad():
        _, a = trunk.run_blocks(x)
        _, b = trunk.run_blocks(x2)
    changed = ((a - b).abs().amax(-1) > 1e-6)[0].reshape(-1)
    ids = scope_ids(level, n, grid)
    flat_hit = np.ravel_multi_index(hit, (n, *grid))
    expect = ids == ids[flat_hit]
    assert torch.equal(changed, expect), (level, changed, expect)
    assert int(expect.sum()) == {"slice": 4, "scan": 8, "study": 16}[level]


def test_scope_ids_layout() -> None:
    ids = scope_ids("slice", 2, (3, 1, 2))  # scan-major, then depth, row, col
    assert ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scope_ids("scan", 2, (3, 1, 2)).tolist() == [0] * 6 + [1] * 6
    assert set(scope_ids("study", 2, (3, 1, 2)).tolist()) == {0}


def test_prefix_regroup_averages_when_widening_and_copies_when_narrowing() -> None:
    p = torch.arange(4.0).reshape(1, 4, 1, 1)  # 4 slice groups (2 scans × 2 depths)
    scan = regroup_prefix(p, 2)
    assert scan.flatten().tolist() == [0.5, 2.5]
    assert regroup_prefix(scan, 4).flatten().tolist() == [0.5, 0.5, 2.5, 2.5]
    assert regroup_prefix(p, 1).flatten().tolist() == [1.5]


def test_schedule_of_paper_and_demo_configs() -> None:
    h3 = get_config(PAPER_DEFAULT)
    assert [h3.level(i) for i in range(12)] == ["slice", "scan", "study"] * 4
    h2 = get_config("clip_vit_base_multiscan_h2_token1176")
    assert [i for i in range(12) if h2.level(i) == "study"] == [2, 5, 8, 11]
    demo = get_config("demo")
    assert [demo.level(i) for i in range(demo.depth)] == ["slice", "scan", "study"] * 2
    assert demo.grid == (6, 6, 6)


def test_official_key_list_loads_strictly_into_paper_config() -> None:
    """Random tensors of the authors' keys/shapes load into the paper config with strict=True."""
    ref = json.loads(REF.read_text())[PAPER_DEFAULT]
    with torch.device("meta"):
        model = HLIP(get_config(PAPER_DEFAULT))
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.empty(shape).uniform_(-1, 1, generator=gen) if shape else torch.tensor(2.6593)
          for k, shape in ref.items()}
    missing, unexpected = load_into(model, sd, "official.safetensors", strict=True)
    assert missing == [] and unexpected == []
    k = "visual.trunk.blocks.11.attn.qkv.weight"
    assert torch.equal(model.state_dict()[k], sd[k])
    # a wrong shape is named
    bad = dict(sd)
    bad["visual.head.proj.weight"] = torch.zeros(3, 3)
    from engines.base import EngineError

    with pytest.raises(EngineError, match="visual.head.proj.weight"):
        load_into(model, bad, "official.safetensors")


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_every_released_config_has_the_official_keys_and_shapes(name: str) -> None:
    ref = json.loads(REF.read_text())[name]
    with torch.device("meta"):
        model = HLIP(get_config(name))
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == ref


def test_clip_loss_matches_hand_computation() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scale = torch.tensor(math.log(2.0))  # exp → 2
    # logits = 2·I·Tᵀ = [[2, 1.2], [0, 1.6]]
    row = -(math.log(math.exp(2) / (math.exp(2) + math.exp(1.2))) + math.log(math.exp(1.6) / (1 + math.exp(1.6)))) / 2
    col = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))) / 2
    expect = 0.5 * (row + col)
    assert float(clip_loss(img, txt, scale)) == pytest.approx(expect, abs=1e-6)
    # distinct text ids → the same loss; duplicate ids → both count as positives
    assert float(clip_loss(img, txt, scale, text_ids=["a", "b"])) == pytest.approx(expect, abs=1e-6)
    dup = float(clip_loss(img, txt, scale, text_ids=["a", "a"]))
    lp = torch.log_softmax(torch.tensor([[2, 1.2], [0, 1.6]]), 1)
    lpt = torch.log_softmax(torch.tensor([[2, 0], [1.2, 1.6]]), 1)
    assert dup == pytest.approx(float(0.5 * (-lp.mean(1).mean() - lpt.mean(1).mean())), abs=1e-6)


def test_forward_shapes_multiscan_and_resampled_grid() -> None:
    torch.manual_seed(0)
    model = HLIP(get_config("tiny")).eval()
    x = torch.randn(2, 3, 1, 16, 32, 32)
    with torch.no_grad():
        img, dense = model.encode_image(x)
    assert img.shape == (2, 16) and dense.shape == (2, 3, 2, 2, 2, 16)
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5)
    with torch.no_grad():  # a 1-slice-group CT scan: spatial posemb resampled to depth 1
        _, d1 = model.encode_image(torch.randn(1, 1, 1, 8, 32, 32))
    assert d1.shape == (1, 1, 1, 2, 2, 16) and torch.isfinite(d1).all()
    pe = torch.randn(1, 2, 2, 2, 4)
    assert resample_posemb(pe, (2, 2, 2)) is pe
    assert resample_posemb(pe, (1, 4, 4)).shape == (1, 1, 4, 4, 4)


def test_block_is_a_plain_prenorm_transformer_block() -> None:
    b = Block(8, 2, 4.0)
    assert {k for k, _ in b.named_parameters()} >= {"norm1.weight", "attn.qkv.weight", "attn.proj.bias",
                                                     "norm2.bias", "mlp.fc1.weight", "mlp.fc2.weight"}


def test_metrics_hand_computed() -> None:
    from engines.hlip.metrics import balanced_accuracy, roc_auc, zero_shot_probs

    # class a: 2/3 right, class b: 1/1 right → (2/3 + 1)/2
    assert balanced_accuracy(["a", "a", "a", "b"], ["a", "a", "b", "b"]) == pytest.approx(5 / 6)
    assert balanced_accuracy([0, 0, 1, 1], [2, 2, 2, 2]) == 0.0  # predicted class never true: recall 0 each
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    p = zero_shot_probs(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), scale=math.log(3.0) + 0.0)
    e = math.exp(math.log(3.0))
    assert p[0, 0] == pytest.approx(e / (e + 1)) and p.sum() == pytest.approx(1.0)


def test_report_generator_rules() -> None:
    from engines.hlip import reports

    t = reports.TumourStats(voxels=60000, volume_cc=60.0, side="left", enhancing=True, necrosis=False, oedema=True)
    r = reports.mri_reports(t)
    assert r[0] == "This MRI study shows: large glioma in the left hemisphere with enhancing component, surrounding oedema."
    assert "right hemisphere" in reports.mri_reports(t.flipped())[0]
    assert reports.mri_reports(None)[0] == "This MRI study shows: no significant abnormalities."
    assert reports.ct_reports(True)[0] == "This CT study shows: intracranial hemorrhage."
    assert reports.prompt("Glioma", "MR") == "This MRI study shows: Glioma."
    assert reports.prompt("intracranial hemorrhage", "CT") == "This CT study shows: intracranial hemorrhage."


def test_converter_unwraps_ddp_checkpoint_and_loads_strict(tmp_path: Path) -> None:
    """An authors'-style .pt ({"epoch", "state_dict" with "module." keys, "optimizer"}) → safetensors → strict load."""
    from engines.hlip.convert import convert
    from engines.hlip.weights_io import load_model

    torch.manual_seed(0)
    src_model = HLIP(get_config("tiny"))
    sd = {f"module.{k}": v for k, v in src_model.state_dict().items()}
    sd["module.text.transformer.embeddings.position_ids"] = torch.arange(4)[None]  # old transformers; dropped
    ckpt = {"epoch": 3, "name": "x", "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}
    torch.save(ckpt, tmp_path / "epoch_3.pt")
    info = convert(tmp_path / "epoch_3.pt", tmp_path / "out.safetensors", "tiny")
    assert info["tensors"] == len(src_model.state_dict())
    model = load_model(tmp_path / "out.safetensors")
    k = "visual.trunk.patch_embed.proj.weight"
    assert torch.equal(model.state_dict()[k], src_model.state_dict()[k])
