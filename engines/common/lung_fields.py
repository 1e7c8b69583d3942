"""Lung fields on a chest radiograph: a tiny U-Net trained on the shared lungVAE lung masks (Qt-free).

The CXR engines gate their maps with :func:`lung_field_mask` so that nothing outside the lungs is lit, and score
localisation against it. This module imports no engine; training and evaluation need torch + numpy +
safetensors only (``prepare`` reads PNGs with Pillow).

Frames: the network sees the radiograph squashed to ``SIZE × SIZE`` (aspect ratio not kept, as the CXR engines
do); its probability map is resized back to the image's ``[H, W]`` (row, column) grid, so the mask lies on the
image's own pixels (no flip, no crop).

Command lines (split: ``engines/multires_cxr/split.json``, by patient with near-duplicates joined, seed
20180321; masked images of its train side train, of its test side are held out)::

    python -m engines.common.lung_fields prepare --data ../shared/data/cxr --out data_prepared/lung_fields
    python -m engines.common.lung_fields train --data data_prepared/lung_fields --out runs/lung_fields --steps 900
    python -m engines.common.lung_fields evaluate --weights resources/weights/lung_fields/model.safetensors
    python -m engines.common.lung_fields ship --run runs/lung_fields --data data_prepared/lung_fields

Evaluation: Dice per held-out image at ``SIZE`` px of the thresholded (0.5) probability against the lungVAE
mask, beside the baseline "average training lung mask ≥ 0.5", with paired bootstrap intervals
(:func:`engines.common.validation.compare`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.common.baseline import mean_mask
from engines.common.evaluate import publish, write_text_atomic
from engines.common.metrics import dice
from engines.common.validation import compare, comparison_table, mean_of

SIZE = 128
MEAN, STD = 0.5, 0.25
THRESHOLD = 0.5
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "resources" / "weights" / "lung_fields"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "model.safetensors"
SPLIT_FILE = Path(__file__).resolve().parents[1] / "multires_cxr" / "split.json"


# ---- model ------------------------------------------------------------------------------------------------
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LungUNet(nn.Module):
    """A 4-level U-Net. ``[B, 1, S, S]`` (normalised ``(x01 − MEAN) / STD``, S divisible by 8) → logits ``[B, 1, S, S]``.

    Also holds ``prior`` ``[SIZE, SIZE]``: the average training lung mask (the baseline, saved with the weights).
    """

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.widths = widths
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(_block(cin, w))
            cin = w
        self.up = nn.ModuleList()
        for w_fine, w_coarse in zip(widths[-2::-1], widths[:0:-1], strict=True):
            self.up.append(_block(w_fine + w_coarse, w_fine))
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.register_buffer("prior", torch.zeros(SIZE, SIZE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                 skip], 1))
        return self.head(x)


def save_model(model: LungUNet, path: Path, extra: dict[str, str] | None = None) -> None:
    """fp16 safetensors with the widths and input size in the metadata."""
    from engines.weights import save_state

    path.parent.mkdir(parents=True, exist_ok=True)
    save_state(model, path, {"engine": "lung_fields", "widths": json.dumps(list(model.widths)),
                             "input_size": str(SIZE), **(extra or {})})


def load_model(path: Path | str = DEFAULT_WEIGHTS) -> LungUNet:
    """The model from a safetensors file, loaded ``strict`` in fp32, in eval mode."""
    from engines.weights import load_into, load_safetensors, read_metadata

    path = Path(path)
    meta = read_metadata(path)
    model = LungUNet(tuple(json.loads(meta.get("widths", "[8, 16, 32, 64]"))))
    load_into(model, {k: v.float() for k, v in load_safetensors(path).items()}, path)
    return model.eval()


@functools.lru_cache(maxsize=2)
def _cached(path: str) -> LungUNet:
    return load_model(path)


# ---- inference --------------------------------------------------------------------------------------------
def _normalise(image: np.ndarray) -> np.ndarray:
    """Any 2D grey array → float32 in [0, 1] by the 0.5/99.5 percentiles (the engines' radiograph scaling)."""
    from engines.common.image import normalise

    return normalise(np.asarray(image, dtype=np.float32))


def network_input(image01: np.ndarray) -> torch.Tensor:
    """``[H, W]`` in [0, 1] → ``[1, 1, SIZE, SIZE]`` network input."""
    from engines.common.image import resize_square

    return torch.from_numpy((resize_square(image01, SIZE) - MEAN) / STD)[None, None]


def keep_largest(mask: np.ndarray, k: int = 2, min_share: float = 0.05) -> np.ndarray:
    """Keep the ``k`` largest 4-connected components of a bool ``[H, W]`` mask (each at least ``min_share`` of
    the largest); label propagation by max-pooling in torch (no scipy)."""
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
    if not bool(m.any()):
        return mask.astype(bool)
    lab = torch.where(m, torch.arange(1, m.numel() + 1, dtype=torch.float32).view(m.shape), torch.zeros(m.shape))
    cross = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]]).bool()
    for _ in range(4 * sum(m.shape)):
        pad = F.pad(lab[None, None], (1, 1, 1, 1))[0, 0]
        nb = torch.stack([pad[dy:dy + m.shape[0], dx:dx + m.shape[1]]
                          for dy in range(3) for dx in range(3) if cross[dy, dx]]).amax(0)
        new = torch.where(m, nb, lab)
        if torch.equal(new, lab):
            break
        lab = new
    ids, counts = torch.unique(lab[m], return_counts=True)
    order = torch.argsort(counts, descending=True)[:k]
    keep = [int(ids[i]) for i in order if counts[i] >= min_share * counts[order[0]]]
    return np.isin(lab.numpy(), keep)


def lung_field_probability(image: np.ndarray, weights: Path | str | None = None) -> np.ndarray:
    """Lung probability ``[H, W]`` float32 in [0, 1] on the image's own pixel grid.

    Args:
        image: one 2D grey radiograph ``[H, W]`` in any intensity range (as the engines receive it).
        weights: a lung_fields safetensors file (default: the shipped one).
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"lung_field_probability takes one 2D grey image, got shape {img.shape}")
    model = _cached(str(weights or DEFAULT_WEIGHTS))
    with torch.inference_mode():
        logit = model(network_input(_normalise(img)).float())
        prob = F.interpolate(torch.sigmoid(logit), size=img.shape, mode="bilinear", align_corners=False)
    return prob[0, 0].numpy().astype(np.float32)


def lung_field_mask(image: np.ndarray, weights: Path | str | None = None) -> np.ndarray:
    """Bool ``[H, W]``: the lung fields of a 2D grey radiograph, at the image's resolution.

    Probability ≥ 0.5, then the two largest connected pieces (computed at ``SIZE`` px, then resized).
    """
    img = np.asarray(image)
    prob = lung_field_probability(img, weights)
    small = F.interpolate(torch.from_numpy(prob)[None, None], size=(SIZE, SIZE), mode="bilinear",
                          align_corners=False, antialias=True)[0, 0].numpy()
    keep = keep_largest(small >= THRESHOLD).astype(np.float32)
    keep_full = F.interpolate(torch.from_numpy(keep)[None, None], size=img.shape, mode="nearest")[0, 0].numpy()
    return (prob >= THRESHOLD) & (keep_full > 0)


# ---- data -------------------------------------------------------------------------------------------------
def prepare(data: Path, out: Path, split_file: Path = SPLIT_FILE) -> dict[str, int]:
    """Write ``out/{train,test}.npz`` (``images`` uint8 ``[N, SIZE, SIZE]``, ``masks`` uint8 0/1, ``filenames``)
    for the images with a lung mask, on the two sides of the patient-wise split. Reads PNGs (Pillow)."""
    from engines.common.cxr import read_png
    from engines.common.image import normalise, resize_mask, resize_square

    split = json.loads(split_file.read_text())
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for side in ("train", "test"):
        imgs, masks, names = [], [], []
        for name in split[side]:
            mpath = data / "lung_masks" / f"{Path(name).stem}_mask.png"
            if not mpath.exists():
                continue
            im = normalise(read_png(data / "images" / name))
            imgs.append(np.round(resize_square(im, SIZE) * 255).clip(0, 255).astype(np.uint8))
            masks.append(resize_mask(read_png(mpath) > 127, SIZE))
            names.append(name)
        np.savez_compressed(out / f"{side}.npz", images=np.stack(imgs), masks=np.stack(masks),
                            filenames=np.array(names))
        counts[side] = len(names)
    return counts


def _augment(x: torch.Tensor, m: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random affine (±10°, scale 0.85–1.15, shift ±8 %) on images and masks ``[B, 1, S, S]``, plus
    contrast/brightness/gamma jitter on the images (no left-right flip: the heart makes the lungs asymmetric)."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    sc = 1 + (torch.rand(b, generator=gen) * 2 - 1) * 0.15
    tx, ty = (torch.rand(2, b, generator=gen) * 2 - 1) * 0.16
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    m = (F.grid_sample(m, grid, align_corners=False, padding_mode="zeros") > 0.5).float()
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.3)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.1
    return (x.clamp(0, 1) ** gamma) * gain + bias, m


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − soft Dice per image, averaged. ``[B, 1, S, S]`` each."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


def train(data: Path, out: Path, steps: int, batch_size: int = 8, lr: float = 3e-3, seed: int = 0,
          threads: int = 1) -> dict[str, object]:
    """Train on ``data/train.npz``; writes ``out/{model.safetensors,train_log.jsonl,train_summary.json}``."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    d = np.load(data / "train.npz")
    images = torch.from_numpy(d["images"]).float()[:, None] / 255.0
    masks = torch.from_numpy(d["masks"]).float()[:, None]
    model = LungUNet()
    model.prior.copy_(torch.from_numpy(mean_mask(d["masks"])))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    t0, losses = time.time(), []
    model.train()
    with open(out / "train_log.jsonl", "w") as log:
        for step in range(1, steps + 1):
            idx = torch.randint(0, len(images), (batch_size,), generator=gen)
            x, m = _augment(images[idx], masks[idx], gen)
            logits = model((x - MEAN) / STD)
            loss = F.binary_cross_entropy_with_logits(logits, m) + dice_loss(logits, m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            rec = {"step": step, "loss": round(losses[-1], 5), "time_s": round(time.time() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            if step % 50 == 0 or step == 1:
                print(json.dumps(rec), flush=True)
    save_model(model.eval(), out / "model.safetensors", {"steps": str(steps)})
    summary = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "train_images": len(images),
               "time_s": round(time.time() - t0, 1), "first_loss": losses[0], "last_loss": losses[-1],
               "hardware": f"{platform.machine()} CPU, {threads} torch thread(s), shared 2-core machine",
               "torch": torch.__version__,
               "command": "python -m engines.common.lung_fields train " + " ".join(sys.argv[2:])}
    write_text_atomic(out / "train_summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


# ---- evaluation -------------------------------------------------------------------------------------------
@torch.inference_mode()
def predict(model: LungUNet, images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, SIZE, SIZE]`` → bool masks ``[N, SIZE, SIZE]`` (probability ≥ 0.5, two largest pieces)."""
    x = (torch.from_numpy(images).float()[:, None] / 255.0 - MEAN) / STD
    prob = torch.sigmoid(model(x))[:, 0].numpy()
    return np.stack([keep_largest(p >= THRESHOLD) for p in prob])


def evaluate(weights: Path, data: Path, threads: int = 1) -> dict[str, object]:
    """Dice of the model and of the average-training-mask baseline on the held-out masks (``data/test.npz``)."""
    from engines.weights import sha256_file

    torch.set_num_threads(threads)
    model = load_model(weights)
    d = np.load(data / "test.npz")
    pred = predict(model, d["images"])
    prior = model.prior.numpy() >= 0.5
    gt = d["masks"].astype(bool)
    d_model = [dice(p, g) for p, g in zip(pred, gt, strict=True)]
    d_base = [dice(prior, g) for g in gt]
    d_flip = [dice(p, g) for p, g in zip(predict(model, d["images"][:, :, ::-1].copy()), gt[:, :, ::-1],
                                          strict=True)]
    comp = compare("Dice per held-out image", "average training lung mask >= 0.5", mean_of(d_model),
                   mean_of(d_base), len(gt))
    return {"engine": "lung_fields", "weights_sha256": sha256_file(weights), "test_images": int(len(gt)),
            "input_size": SIZE, "dice_mean": float(np.mean(d_model)), "dice_min": float(np.min(d_model)),
            "dice_baseline_mean": float(np.mean(d_base)),
            "dice_left_right_flipped_input_vs_flipped_mask": float(np.mean(d_flip)),
            "per_image": {str(n): round(v, 4) for n, v in zip(d["filenames"], d_model, strict=True)},
            "validation": comp.to_dict(), "table": comparison_table([comp])}


def _table(res: dict) -> str:
    return (f"held-out lung masks: {res['test_images']} images at {res['input_size']} px\n{res['table']}\n"
            f"min Dice {res['dice_min']:.3f}; left-right flipped input vs flipped mask: "
            f"{res['dice_left_right_flipped_input_vs_flipped_mask']:.3f}")


LICENCE = ("Trained on the lungVAE lung masks (Selvan et al., arXiv:2005.10052; no separate licence stated) of "
           "../shared/data/cxr images (per-image CC BY / CC BY-SA / CC BY-NC-SA; metadata CC BY-NC-SA 4.0). "
           "Treat as non-commercial, attribution, share-alike (CC BY-NC-SA 4.0).")
LIMITS = ["57 training masks (patients of the train side of engines/multires_cxr/split.json), 17 held-out.",
          "The reference masks are themselves model output (lungVAE), not manual delineations.",
          "Frontal (PA/AP) adult chest radiographs only; 128 px input, so the border is coarse at full resolution.",
          "Lungs behind the heart and below the diaphragm dome are not part of the masks it learned."]


def ship(run: Path, data: Path, data_arg: str = "data_prepared/lung_fields") -> dict[str, object]:
    """Copy a run's weights into ``resources/weights/lung_fields/``, evaluate them, write eval.json and the cards."""
    import shutil

    from engines.weights import sha256_file

    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "train_log.jsonl"):
        shutil.copyfile(run / name, WEIGHTS_DIR / name)
    weights = WEIGHTS_DIR / "model.safetensors"
    summary = json.loads((run / "train_summary.json").read_text())
    res = evaluate(weights, data)
    command = f"python -m engines.common.lung_fields evaluate --weights resources/weights/lung_fields/" \
              f"model.safetensors --data {data_arg}"
    res["command"] = command
    write_text_atomic(WEIGHTS_DIR / "eval.json", json.dumps(res, indent=1) + "\n")
    comp = res["validation"]
    card = {
        "engine": "lung_fields", "title": "Lung fields (tiny U-Net)", "weights_file": "model.safetensors",
        "sha256": sha256_file(weights), "size_bytes": weights.stat().st_size, "dtype": "float16",
        "data": {"source": "../shared/data/cxr lung_masks (lungVAE), 74 images",
                 "split": "engines/multires_cxr/split.json (by patient, near-duplicates joined, seed 20180321)",
                 "train_images": summary["train_images"], "test_images": res["test_images"],
                 "prepare": "python -m engines.common.lung_fields prepare --data ../shared/data/cxr "
                            f"--out {data_arg}"},
        "training": {**{k: summary[k] for k in ("steps", "batch_size", "lr", "time_s", "hardware", "first_loss",
                                                "last_loss")},
                     "command": summary["command"], "where": "this 2-core CPU (no GPU)"},
        "metrics": {"command": command, "dice_mean": res["dice_mean"], "dice_min": res["dice_min"],
                    "dice_baseline_mean": res["dice_baseline_mean"],
                    "dice_flipped": res["dice_left_right_flipped_input_vs_flipped_mask"]},
        "validation": comp, "threshold": THRESHOLD, "input_size": SIZE,
        "licence": LICENCE, "intended_use": "research demo weights, not for clinical use; gates CXR engine maps "
                                            "to the lung fields", "limits": LIMITS,
    }
    md = ["# Lung fields (tiny U-Net) — model card", "", "**research demo weights, not for clinical use**", "",
          f"Weights `model.safetensors` (fp16, {card['size_bytes'] / 1e3:.0f} kB), SHA-256 `{card['sha256']}`. "
          "A 4-level U-Net (widths 8-16-32-64) at 128 px; output = lung probability, mask = probability >= 0.5, "
          "two largest pieces (`engines.common.lung_fields.lung_field_mask`). The average training mask is "
          "stored with the weights (`prior`).", "",
          "## Training", "", f"`{summary['command']}`: {summary['steps']} steps, batch {summary['batch_size']}, "
          f"{summary['time_s']:.0f} s on {summary['hardware']} (this machine, no GPU); loss "
          f"{summary['first_loss']:.3f} -> {summary['last_loss']:.3f}. Augmentation: shared affine on image and "
          "mask, contrast/gamma jitter, no flips.", "",
          "## Evaluation (held-out masks only)", "", f"`{command}`", "", "```", _table(res), "```", "",
          f"Verdict: {comp['summary']}.", "",
          "## Licence", "", LICENCE, "", "## Limits", "", *(f"- {x}" for x in LIMITS)]
    write_text_atomic(WEIGHTS_DIR / "card.json", json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    write_text_atomic(WEIGHTS_DIR / "card.md", "\n".join(md) + "\n")
    print(_table(res))
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Lung-field segmentation: prepare, train, evaluate, ship.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", type=Path, default=Path("../shared/data/cxr"))
    p.add_argument("--out", type=Path, default=Path("data_prepared/lung_fields"))
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, default=Path("data_prepared/lung_fields"))
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=900)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("evaluate")
    e.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    e.add_argument("--data", type=Path, default=Path("data_prepared/lung_fields"))
    e.add_argument("--out", type=Path, default=None)
    e.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("ship")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--data", type=Path, default=Path("data_prepared/lung_fields"))
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        print(prepare(a.data, a.out))
    elif a.cmd == "train":
        s_ = train(a.data, a.out, a.steps, a.batch_size, a.lr, a.seed, a.threads)
        print(f"done: {s_['steps']} steps in {s_['time_s']} s, loss {s_['first_loss']:.4f} -> {s_['last_loss']:.4f}")
    elif a.cmd == "evaluate":
        res = evaluate(a.weights, a.data, a.threads)
        publish(res, "engines.common.lung_fields evaluate", argv, _table(res),
                a.out or a.weights.with_name("eval.json"))
    else:
        ship(a.run, a.data)


if __name__ == "__main__":
    main()
