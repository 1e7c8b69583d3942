"""Stage 2: train the RASALoRE network on slice labels + DDPT pseudo-masks (torch + numpy only).

Usage::

    python -m engines.rasalore.train --data data_prepared/rasalore --pseudo runs/rasalore --config demo \\
        --steps 300 --out runs/rasalore
    torchrun --nproc_per_node 4 -m engines.rasalore.train --config paper --device cuda ...

Reads ``<data>/train.npz`` (images, slice labels) and ``<pseudo>/pseudo_train.npz`` (stage-1 pseudo-masks);
never the ground truth. Each batch is half tumour, half healthy slices (ambiguous ones are never drawn).
Loss (:mod:`engines.rasalore.losses`):

* tumour slices: EL-Tversky(mask, pseudo-mask) + 0.6 · FP mass, EL-Dice(point activation, pseudo-mask sampled
  at the 32×32 candidate points), point-embedding MSE (±1);
* healthy slices: false-positive penalty (mean mask probability + mean point activation) and the point-embedding
  MSE towards −1.

Checkpoint selection (every ``--val-every`` steps and at the end) uses the validation patient's slice labels and
stage-1 pseudo-masks only (``<data>/val.npz``, ``<pseudo>/pseudo_val.npz``; never its ground truth): the score
is the mean of the slice AUROC of the point activation and the Dice of the mask (> 0.5) against the
pseudo-masks on its tumour slices. The best checkpoint is saved.

Logs one JSON line per step to ``<out>/train_log.jsonl`` (and each validation to ``val_log.jsonl``); writes
``<out>/model.safetensors`` (fp16, config in the metadata, the selected checkpoint) and
``<out>/train_summary.json``.
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
from engines.rasalore.losses import (
    healthy_fp_penalty,
    point_activation_loss,
    point_embedding_loss,
    segmentation_loss,
)
from engines.rasalore.model import CONFIGS, RASALoRE, count_parameters, sample_grid
from engines.rasalore.weights_io import save_weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train RASALoRE stage 2.")
    ap.add_argument("--data", type=Path, default=Path("data_prepared/rasalore"))
    ap.add_argument("--pseudo", type=Path, required=True, help="folder with pseudo_train.npz (train_ddpt --out)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--init-from", type=Path, default=None, help="continue from a stage-2 weights file (strict)")
    ap.add_argument("--reinit", nargs="*", default=[], help="module names to re-initialise (the authors' "
                    "initialize_weights: Kaiming-normal fan_out for (transposed) convs, zero bias), e.g. "
                    "decoder.upsample")
    ap.add_argument("--healthy-weight", type=float, default=1.0, help="weight of the healthy-slice FP penalty")
    ap.add_argument("--val-every", type=int, default=30, help="validate (and maybe keep) every N steps")
    ap.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (saves)")
    ap.add_argument("--limit", type=int, default=None, help="use only N training slices (tests)")
    add_run_args(ap, lr=1e-3, weight_decay=None)
    return ap.parse_args(argv)


def authors_init(module: torch.nn.Module) -> None:
    """The authors' ``initialize_weights``: Kaiming-normal (fan_out, relu) for Conv2d / ConvTranspose2d, zero bias."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


def stage2_loss(model: torch.nn.Module, x: torch.Tensor, pseudo: torch.Tensor, tumour: torch.Tensor,
                healthy_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch. ``x [B,1,S,S]``, ``pseudo [B,S,S]`` in {0,1}, ``tumour [B]`` bool."""
    logits, act, emb = model(x)
    prob = torch.sigmoid(logits)[:, 0]
    target = F.interpolate(pseudo[:, None], size=prob.shape[-2:], mode="nearest")[:, 0]
    g = act.shape[-1]
    pts = sample_grid(pseudo, g)
    parts: dict[str, torch.Tensor] = {"emb": point_embedding_loss(emb, pts)}
    t = tumour & (pseudo.flatten(1).sum(1) > 0)
    if t.any():
        parts["seg"] = segmentation_loss(prob[t], target[t])
        parts["point"] = point_activation_loss(act[t], pts[t])
    h = ~tumour
    if h.any():
        parts["healthy_fp"] = healthy_weight * healthy_fp_penalty(prob[h], act[h])
    total = torch.stack(list(parts.values())).sum()
    return total, {k: round(float(v.detach()), 5) for k, v in parts.items()}


def validate(model: torch.nn.Module, val: dict[str, np.ndarray], pseudo: np.ndarray) -> dict[str, float]:
    """Label-only validation: slice AUROC of the point activation and Dice of the mask vs the pseudo-masks."""
    from engines.common.metrics import dice, roc_auc
    from engines.rasalore.evaluate import predict

    was_training = model.training
    model.eval()
    prob, score = predict(model, val["images"])
    model.train(was_training)
    lab = val["labels"]
    known = lab >= 0
    auroc = roc_auc(lab[known] == 1, score[known])
    tum = np.nonzero((lab == 1) & (pseudo.reshape(len(pseudo), -1).max(1) > 0))[0]
    pd = float(np.mean([dice(prob[i] > 0.5, pseudo[i]) for i in tum])) if len(tum) else 0.0
    return {"val_auroc": round(float(auroc), 4), "val_pseudo_dice": round(pd, 4),
            "val_score": round((float(auroc) + pd) / 2, 4)}


def train(args: argparse.Namespace) -> dict[str, object]:
    distributed, rank, world, device = start_run(args)
    cfg = CONFIGS[args.config]
    d = load_side(args.data, "train")
    with np.load(Path(args.pseudo) / "pseudo_train.npz") as p:
        pseudo_all = p["pseudo"]
    if len(pseudo_all) != len(d["labels"]):
        raise ValueError(f"pseudo_train.npz has {len(pseudo_all)} slices, train.npz {len(d['labels'])}: "
                         "run train_ddpt on the same prepared data")
    keep = subset(d["labels"], args.limit)
    images, labels, pseudo_np = d["images"][keep], d["labels"][keep], pseudo_all[keep]
    val, pseudo_val = None, None
    if (Path(args.data) / "val.npz").exists() and (Path(args.pseudo) / "pseudo_val.npz").exists():
        val = load_side(args.data, "val")
        with np.load(Path(args.pseudo) / "pseudo_val.npz") as p:
            pseudo_val = p["pseudo"]
    model = RASALoRE(cfg)
    if args.init_from is not None:
        from engines.rasalore.weights_io import load_stage2

        init = load_stage2(args.init_from)
        cfg = init.config
        model = RASALoRE(cfg)
        model.load_state_dict(init.state_dict(), strict=True)
    for name in args.reinit:
        authors_init(model.get_submodule(name))
    model = model.to(device)
    loop = start_training(model, args, labels, rank, distributed, weight_decay=1e-4, max_warmup=20)
    net, sched, gen, batches = loop.net, loop.sched, loop.gen, loop.batches
    log = open(args.out / "train_log.jsonl", "w") if rank == 0 else None  # noqa: SIM115
    vlog = open(args.out / "val_log.jsonl", "w") if rank == 0 and val is not None else None  # noqa: SIM115
    best: dict[str, object] = {"val_score": -1.0, "step": 0, "state": None}
    losses = loop.losses
    t0 = time.time()
    net.train()

    def maybe_keep(step: int) -> None:
        if vlog is None or val is None or pseudo_val is None:
            return
        rec = {"step": step, **validate(model, val, pseudo_val), "time_s": round(time.time() - t0, 1)}
        vlog.write(json.dumps(rec) + "\n")
        vlog.flush()
        print("validation", json.dumps(rec), flush=True)
        if rec["val_score"] > best["val_score"]:  # type: ignore[operator]
            best.update(val_score=rec["val_score"], step=step, metrics=rec,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})

    for step in range(1, args.steps + 1):
        idx = next(batches)
        x = torch.from_numpy(images[idx].astype(np.float32))[:, None]
        pm = torch.from_numpy(pseudo_np[idx].astype(np.float32))
        x, (pm,) = augment(x, [pm], gen)
        tumour = torch.from_numpy(labels[idx] == 1)
        loss, parts = stage2_loss(net, x.to(device), pm.to(device), tumour.to(device), args.healthy_weight)
        loop.step(loss)
        if log is not None:
            rec = {"step": step, "loss": round(losses[-1], 5), **parts, "lr": sched.get_last_lr()[0],
                   "time_s": round(time.time() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if step % 10 == 0 or step == 1:
                print(json.dumps(rec), flush=True)
        if args.val_every and step % args.val_every == 0 and step < args.steps:
            maybe_keep(step)
        if args.time_budget and time.time() - t0 > args.time_budget:
            print(f"time budget reached after {step} steps", flush=True)
            break
    maybe_keep(len(losses))
    if best["state"] is not None:
        model.load_state_dict(best["state"])  # type: ignore[arg-type]
    summary: dict[str, object] = {
        "stage": "rasalore", "steps": len(losses), "steps_planned": args.steps, "batch_size": args.batch_size, "lr": args.lr, "world_size": world,
        "config": cfg.to_dict(), "parameters": count_parameters(model), "train_slices": int(len(keep)),
        "init_from": str(args.init_from) if args.init_from else None, "reinit": args.reinit,
        "healthy_weight": args.healthy_weight,
        "selected_step": best["step"] if best["state"] is not None else len(losses),
        "selection": ("best validation score (mean of slice AUROC and Dice vs the stage-1 pseudo-masks of the "
                      "validation patient; no ground truth)") if best["state"] is not None else "last step",
        "validation": best.get("metrics"),
        "time_s": round(time.time() - t0, 1), "hardware": hardware(device), "torch": torch.__version__,
        "command": "python -m engines.rasalore.train " + " ".join(sys.argv[1:]),
        "first_loss": losses[0], "last_loss": losses[-1],
    }
    if rank == 0:
        assert log is not None
        log.close()
        if vlog is not None:
            vlog.close()
        save_weights(model, args.out / "model.safetensors", "rasalore", cfg.to_dict(),
                     {"steps": str(len(losses)), "engine": "rasalore"})
    return finish_run(summary, losses, args.out if rank == 0 else None)


def main(argv: list[str] | None = None) -> None:
    train_main(train, parse_args, argv)


if __name__ == "__main__":
    main()
