"""Prepare HLIP training/evaluation studies from ``../shared/data`` → ``data_prepared/hlip/`` (numpy only after this).

Studies (see :mod:`engines.hlip.reports` for the texts):

* **Brain MRI** — each BRATS 2013 patient gives a 2-scan study (FLAIR, T1c; 48×96×96 each) for the whole
  volume (155 slices → 48, nearest-exact) and 8 slab studies of 48 contiguous 1-mm slices (starts 0, 15, …,
  105) so that tumour-free slabs exist ("no significant abnormalities"). BraTS-GLI-00001 (t2f + t1c, no mask)
  adds one whole-volume "glioma" study (training side only).
* **Head CT** — each PNG slice is a 1-scan study of one slice (grey = mean of RGB, zero-padded to square,
  96×96; depth 1, repeated to one patch depth at training time).

Split (:data:`SPLIT_FILE`, fixed seed): MRI by patient (1 of the 4 BRATS patients held out), head CT by
pseudo-patient ``group`` (30 % of groups held out, stratified by the group's majority label). Nothing from the
held-out side is used for training, model selection or thresholds.

Outputs: ``mri.npz`` (``images [S, 2, 48, 96, 96] uint8``), ``ct.npz`` (``images [S, 1, 1, 96, 96] uint8``),
``meta.json`` (per study: id, patient/group, split, label, report texts and their flipped forms; MRI: the tumour
fraction of every token of the demo grid, for the heatmap check in evaluate — never used in training),
``texts.npz`` (``texts``, MiniLM ``emb [T, 384]`` for every report and prompt, so training needs no encoder).

    python -m engines.hlip.prepare --data ../shared/data --out data_prepared/hlip
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import numpy as np

from engines.hlip import reports
from engines.hlip.preprocess import resize_scan, slice_input, to_uint8, to_unit

REPO = Path(__file__).resolve().parents[2]
SPLIT_FILE = Path(__file__).resolve().parent / "split.json"
SEED = 20250527
SIZE = (48, 96, 96)
PATCH = (8, 16, 16)  # the demo patch (for the per-token tumour fraction used by evaluate)
SLAB = 48
SLAB_STARTS = tuple(range(0, 155 - SLAB + 1, 15))  # 0, 15, …, 105 → 8 slabs
BRATS = ("brats_2013_pat0001_1", "brats_2013_pat0002_1", "brats_2013_pat0005_1", "brats_2013_pat0006_1")


def make_split(data: Path, seed: int = SEED) -> dict:
    """Patients/groups → train/test, deterministic for ``seed``."""
    rng = random.Random(seed)
    pats = list(BRATS)
    rng.shuffle(pats)
    groups: dict[str, list[int]] = {}
    with open(data / "head_ct" / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            groups.setdefault(row["group"], []).append(int(row["hemorrhage"]))
    test_groups: list[str] = []
    for lab in (0, 1):
        gs = sorted(g for g, v in groups.items() if (np.mean(v) >= 0.5) == bool(lab))
        rng.shuffle(gs)
        test_groups += gs[: round(0.3 * len(gs))]
    return {"seed": seed, "mri_test_patients": sorted(pats[:1]), "mri_train_patients": sorted(pats[1:]) +
            ["BraTS-GLI-00001-000"], "ct_test_groups": sorted(test_groups),
            "ct_train_groups": sorted(g for g in groups if g not in test_groups),
            "rule": "MRI: 1 of 4 BRATS 2013 patients held out (BraTS-GLI-00001 train only); head CT: 30 % of the "
                    "pseudo-patient groups held out, stratified by the group's majority label"}


def tumour_stats(mask: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> reports.TumourStats | None:
    """Whole-tumour stats of a label array ``[K, J, I]`` (side from patient x: LPS, +x = patient left)."""
    wt = mask > 0
    n = int(wt.sum())
    if n == 0:
        return None
    vox_cc = abs(np.linalg.det(affine[:3, :3])) / 1000.0

    def centre_x(m: np.ndarray) -> float:
        k, j, i = np.nonzero(m)
        c = np.array([i.mean(), j.mean(), k.mean(), 1.0])
        return float((affine @ c)[0])

    dx = centre_x(wt) - centre_x(brain)
    side = "left" if dx > 5 else ("right" if dx < -5 else "midline")
    return reports.TumourStats(voxels=n, volume_cc=n * vox_cc, side=side, enhancing=bool((mask == 4).sum() > 50),
                               necrosis=bool((mask == 1).sum() > 50), oedema=bool((mask == 2).sum() > 50))


def token_fraction(mask: np.ndarray, size: tuple[int, int, int], patch: tuple[int, int, int] = PATCH) -> np.ndarray:
    """Fraction of tumour per token ``[D', H', W']``: the mask resized like the scan, averaged over each patch."""
    m = resize_scan(mask, size)
    d, h, w = (s // p for s, p in zip(size, patch, strict=True))
    return m.reshape(d, patch[0], h, patch[1], w, patch[2]).mean(axis=(1, 3, 5))


def _scan(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from viewer.io.nifti import read_nifti

    v = read_nifti(path)
    return np.asarray(v.array), v.affine


def prepare_mri(data: Path, split: dict, size: tuple[int, int, int] = SIZE, patients: tuple[str, ...] = BRATS,
                gli: bool = True) -> tuple[np.ndarray, list[dict]]:
    images, meta = [], []
    root = data / "brain_mri"
    for pat in patients:
        fl, aff = _scan(root / pat / "Flair_subtrMeanDivStd.nii.gz")
        t1c, _ = _scan(root / pat / "T1c_subtrMeanDivStd.nii.gz")
        lab, _ = _scan(root / pat / "OTMultiClass.nii.gz")
        brain, _ = _scan(root / pat / "brainmask.nii.gz")
        lab = np.rint(lab).astype(np.int16)
        brain = brain > 0.5
        u = [to_unit(fl, "MR"), to_unit(t1c, "MR")]
        side = "test" if pat in split["mri_test_patients"] else "train"
        views = [("whole", 0, fl.shape[0])] + [(f"slab{s:03d}", s, s + SLAB) for s in SLAB_STARTS]
        for name, k0, k1 in views:
            st = tumour_stats(lab[k0:k1], brain[k0:k1] if brain[k0:k1].any() else brain, aff)
            images.append(np.stack([to_uint8(resize_scan(x[k0:k1], size)) for x in u]))
            frac = token_fraction((lab[k0:k1] > 0).astype(np.float32), size)
            meta.append({"id": f"{pat}/{name}", "patient": pat, "split": side, "kind": name, "slices": [k0, k1],
                         "token_tumour_fraction": np.round(frac, 3).tolist(),
                         "tumour": st is not None, "stats": None if st is None else vars(st),
                         "reports": reports.mri_reports(st),
                         "reports_flipped": reports.mri_reports(st.flipped() if st else None)})
    gli_dir = root / "BraTS-GLI-00001-000"
    if gli and gli_dir.is_dir():
        u = [to_unit(_scan(gli_dir / f"BraTS-GLI-00001-000-{s}.nii.gz")[0], "MR") for s in ("t2f", "t1c")]
        images.append(np.stack([to_uint8(resize_scan(x, size)) for x in u]))
        r = reports.mri_reports(None, tumour_known=False)
        meta.append({"id": "BraTS-GLI-00001-000/whole", "patient": "BraTS-GLI-00001-000", "split": "train",
                     "kind": "whole", "slices": [0, 155], "tumour": True, "stats": None, "reports": r,
                     "reports_flipped": r})
    return np.stack(images), meta


def load_png_grey(path: Path) -> np.ndarray:
    """A head-CT PNG → grey float32 [J, I] in [0, 255] (mean of RGB; alpha dropped)."""
    from PIL import Image

    im = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return im.mean(-1)


def prepare_ct(data: Path, split: dict, size: tuple[int, int, int] = SIZE, limit: int | None = None
               ) -> tuple[np.ndarray, list[dict]]:
    images, meta = [], []
    root = data / "head_ct"
    with open(root / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    if limit is not None:
        rows = rows[:limit]
    for row in rows:
        g = load_png_grey(root / "images" / f"{int(row['id']):03d}.png") / 255.0
        images.append(slice_input(g, size)[None])
        h = row["hemorrhage"] == "1"
        side = "test" if row["group"] in split["ct_test_groups"] else "train"
        r = reports.ct_reports(h)
        meta.append({"id": f"head_ct/{int(row['id']):03d}", "group": row["group"], "split": side,
                     "hemorrhage": h, "reports": r, "reports_flipped": r})
    return np.stack(images), meta


def all_prompts() -> list[str]:
    out = []
    for mod in ("MR", "CT", "OT"):
        for c in (*reports.PUB_BRAIN_5, *reports.DEFAULT_CLASSES, *reports.BINARY_TASKS["CT"],
                  *reports.BINARY_TASKS["MR"]):
            out.append(reports.prompt(c, mod))
    return out


def prepare(data: Path, out: Path, split_file: Path = SPLIT_FILE, encode: bool = True,
            size: tuple[int, int, int] = SIZE, patients: tuple[str, ...] = BRATS, gli: bool = True,
            ct_limit: int | None = None) -> dict:
    """Write the prepared studies to ``out`` (``size``/``patients``/``gli``/``ct_limit`` shrink it for tests)."""
    out.mkdir(parents=True, exist_ok=True)
    if split_file.exists():
        split = json.loads(split_file.read_text())
    else:
        split = make_split(data)
        split_file.write_text(json.dumps(split, indent=1))
    mri, mri_meta = prepare_mri(data, split, size, patients, gli)
    ct, ct_meta = prepare_ct(data, split, size, ct_limit)
    np.savez_compressed(out / "mri.npz", images=mri)
    np.savez_compressed(out / "ct.npz", images=ct)
    texts = sorted({t for m in mri_meta + ct_meta for t in m["reports"] + m["reports_flipped"]} | set(all_prompts()))
    if encode:
        from engines.common.text import encode as encode_text

        emb = encode_text(texts)
        np.savez(out / "texts.npz", texts=np.array(texts), emb=emb.astype(np.float32))
    info = {"mri": mri_meta, "ct": ct_meta, "split": split, "size": list(size)}
    (out / "meta.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "data_prepared" / "hlip")
    a = ap.parse_args(argv)
    info = prepare(a.data, a.out)
    for k in ("mri", "ct"):
        tr = sum(m["split"] == "train" for m in info[k])
        print(f"{k}: {len(info[k])} studies ({tr} train, {len(info[k]) - tr} test)")


if __name__ == "__main__":
    main()
