"""``lucent infer``: engine listing, batch inference to NIfTI/PNG/JSON/CSV, errors, rank sharding."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import cli, registry
from tests.engines.toy_engine import ToyEngine
from viewer.io import load_volume, write_nifti
from viewer.model.volume import Volume


@pytest.fixture(autouse=True)
def toy():
    with registry.registered(ToyEngine()) as engine:
        yield engine


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    rng = np.random.default_rng(3)
    ct = rng.normal(0, 200, (5, 24, 20)).astype(np.int16)
    affine = np.array([[0.8, 0, 0, -10], [0, 0.8, 0, 20], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    nii = tmp_path / "in" / "ct.nii.gz"
    nii.parent.mkdir()
    write_nifti(Volume(ct, affine, "CT"), nii)
    png = tmp_path / "in" / "xray.png"
    img = np.zeros((40, 32), np.uint8)
    img[10:30, 8:24] = 200
    Image.fromarray(img).save(png)
    return [nii, png]


def test_list_engines(capsys):
    assert cli.main(["infer", "--list-engines"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "title", "inputs"]
    toy_line = next(line for line in lines if line.startswith("toy "))
    assert "2D/3D any" in toy_line and "none shipped" in toy_line
    if "multires_cxr" in registry.ids():
        from engines.weights import ModelCard

        card = ModelCard.load("multires_cxr")
        assert f"{card.weights_file} sha256:{card.sha256[:12]}" in out
    assert cli.main(["infer", "--list-engines", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {e["id"] for e in data["engines"]} >= {"toy"}


def test_infer_writes_overlays_scores_and_progress(tmp_path, inputs, capsys):
    out = tmp_path / "out"
    rc = cli.main(["infer", "--engine", "toy", "--input", *map(str, inputs), "--output", str(out),
                   "--query", "edges", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "100.0%" in err and "2/2 input(s) done" in err
    for name, is_2d in (("ct", False), ("xray", True)):
        d = out / name
        doc = json.loads((d / "scores.json").read_text())
        assert doc["engine"] == "toy" and doc["query"] == "edges" and set(doc["scores"]) == {"edge fraction",
                                                                                          "mean saliency"}
        assert [o["nifti"] for o in doc["overlays"]] == ["edges.nii.gz", "edge_mask.nii.gz"]
        assert ("png" in doc["overlays"][0]) == is_2d and (d / "edges.png").exists() == is_2d
        src = load_volume(inputs[0] if name == "ct" else inputs[1])
        ov = load_volume(d / "edges.nii.gz")
        assert ov.shape3d == src.shape3d
        # every input voxel's overlay value sits at the same patient position in the written file
        expected = ToyEngine().run(src).overlays[0].volume.data3d
        nk, nj, ni = src.shape3d
        ijk = np.stack(np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij"), -1).reshape(-1, 3)
        there = np.rint(ov.patient_to_index(src.index_to_patient(ijk))).astype(int)
        got = ov.data3d[there[:, 2], there[:, 1], there[:, 0]]
        assert np.allclose(got, expected[ijk[:, 2], ijk[:, 1], ijk[:, 0]], atol=1e-6)
    png = np.asarray(Image.open(out / "xray" / "edges.png"))
    assert png.shape == (40 + 28, 32, 3) and png.std() > 0  # the image plus the legend strip
    with open(out / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["input"] for r in rows} == {str(p) for p in inputs}


def test_bad_inputs_one_line_each_and_nonzero_exit(tmp_path, inputs, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image\n")
    rc = cli.main(["infer", "--engine", "toy", "--input", str(bad), str(inputs[1]), "--output",
                   str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    bad_lines = [line for line in err.splitlines() if str(bad) in line]
    assert len(bad_lines) == 1 and bad_lines[0].startswith("lucent infer: ") and "Traceback" not in err
    assert (tmp_path / "o" / "xray" / "scores.json").exists()  # the good input still ran


def test_engine_errors_and_usage(tmp_path, inputs, capsys):
    assert cli.main(["infer", "--engine", "nope", "--input", str(inputs[0]), "--output", str(tmp_path)]) == 2
    assert "No engine 'nope'" in capsys.readouterr().err
    assert cli.main(["infer", "--engine", "toy"]) == 2
    assert cli.main(["bogus"]) == 2
    with registry.registered(ToyEngine(fail="engine_error")):
        rc = cli.main(["infer", "--engine", "toy", "--input", str(inputs[1]), "--output", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 1 and "Toy edges cannot read this image" in err


def test_ranks_shard_inputs_and_rank0_merges(tmp_path, inputs, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (1, 0):  # rank 0 last: it merges the per-rank CSVs after the (here trivial) barrier
        monkeypatch.setenv("RANK", str(rank))
        assert cli.main(["infer", "--engine", "toy", "--input", *map(str, inputs), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "[rank 1/2]" in err
    assert (out / "xray" / "scores.json").exists() and (out / "ct" / "scores.json").exists()
    assert json.loads((out / "xray" / "scores.json").read_text())["rank"] == 1
    with open(out / "scores.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4


def test_helpers():
    assert cli.input_name("/a/b/ct.nii.gz") == "ct" and cli.input_name("/a/series/") == "series"
    assert cli.slug("saliency · Effusion") == "saliency_effusion"
    assert cli._unique_names(["a/x.png", "b/x.png"]) == ["x", "x_2"]


DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from engines import cli, registry
from tests.engines.toy_engine import ToyEngine
registry.register(ToyEngine())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_torchrun_two_ranks_shard_and_merge(tmp_path, inputs):
    """A real 2-process torchrun (gloo barrier); each input is done by exactly one rank."""
    import subprocess
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=repo))
    pngs = []
    for n in range(3):
        p = tmp_path / "in" / f"img{n}.png"
        Image.fromarray(np.random.default_rng(n).integers(0, 255, (32, 32), dtype=np.uint8)).save(p)
        pngs.append(p)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
           "infer", "--engine", "toy", "--input", *map(str, [*pngs, inputs[0]]), "--output", str(out)]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = {json.loads((out / n / "scores.json").read_text())["rank"] for n in ("img0", "img1", "img2", "ct")}
    assert ranks == {0, 1}
    with open(out / "scores.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 8


def test_png_overlays_are_sampled_by_the_viewers_resampler():
    """A one-pixel marker on a coarse 8×8 map over a 40×32 image lands on the image pixels whose centres it covers
    (5×4 pixels, pixel centres aligned), exactly as the viewer's OverlaySampler draws it."""
    from engines.common.geometry import map_to_image_matrix
    from viewer.model.geometry import OverlaySampler, SliceMapping

    base = Volume(np.zeros((40, 32), np.float32), affine=np.diag([0.5, 0.5, 1.0, 1.0]), modality="OT")
    m = np.zeros((8, 8), np.float32)
    m[2, 5] = 1
    ov = Volume(m, affine=base.affine @ map_to_image_matrix((8, 8), (40, 32)), modality="OT")
    rows, cols = np.nonzero(cli.resample_to_grid(ov, base, nearest=True) == 1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 14, 20, 23)
    viewer = OverlaySampler(base, ov, SliceMapping.for_volume(base, "native"), order=1, fill=np.nan).sample(0)
    np.testing.assert_array_equal(cli.resample_to_grid(ov, base, nearest=False), viewer)


def test_study_and_per_engine_command(tmp_path, inputs):
    nii, png = inputs
    out = tmp_path / "study"
    assert cli.main(["infer", "--engine", "toy", "--input", str(nii), str(nii), "--output", str(out), "--study",
                     "--device", "cpu"]) == 0
    doc = json.loads((out / "ct" / "scores.json").read_text())
    assert doc["scans"] == [str(nii), str(nii)] and not (out / "ct_2").exists()
    # python -m engines.<id>.infer INPUT --query A --query B: one folder per query
    assert cli.engine_main("toy", [str(png), "--out", str(tmp_path / "q"), "--query", "a b", "--query", "c"]) == 0
    assert (tmp_path / "q" / "a_b" / "xray" / "scores.json").is_file()
    assert (tmp_path / "q" / "c" / "xray" / "scores.json").is_file()


def test_png_legend_font_draws_the_legends_glyphs():
    """The legend strip of `lucent infer` PNGs draws τ, dashes, ≥ … (Pillow's built-in font drew RadZero's en dash
    as a box): each glyph differs from the font's missing-glyph box."""
    from viewer.views.fonts import GLYPHS

    font = cli.legend_font(12)
    missing = np.asarray(font.getmask("\ue000"))  # a private-use code point: no font draws it
    for c in GLYPHS:
        mask = np.asarray(font.getmask(c))
        assert mask.any() and (mask.shape != missing.shape or not np.array_equal(mask, missing)), c
