"""Train HLIP (CLIP loss, hierarchical-attention 3D ViT) on the prepared studies.

    python -m engines.hlip.train --data data_prepared/hlip --config demo --steps 600 --out runs/hlip
    torchrun --nproc_per_node 4 -m engines.hlip.train --data ... --device cuda --steps 5000 --out ...

Each step draws ``--mri-batch`` MRI studies (2 scans, 48×96×96) and ``--ct-batch`` head-CT studies (1 scan of
one slice, repeated to one patch depth → a 1×6×6 token grid; the spatial position table is resampled). The two
groups go through the vision tower separately (different token counts) and meet in one CLIP loss over the whole
batch, with identical report texts counted as positives of each other (:func:`engines.hlip.model.clip_loss`).
The text side is the frozen all-MiniLM-L6-v2 (embeddings precomputed by ``prepare``) + a trainable ``text.proj``.
Augmentation: left–right flip (MRI texts swap left/right), intensity scale/shift, a random report variant.
Under torchrun (``WORLD_SIZE`` set) it uses DDP (gloo on CPU, nccl on CUDA); each rank draws its own batches.
Writes ``model.safetensors`` (fp16), ``train_log.jsonl`` (loss per step) and ``train_summary.json`` to ``--out``.
No evaluation data is touched (no model selection: the last step is saved).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from engines.common.distributed import finish_distributed, init_distributed
from engines.common.train import add_run_args, train_parser
from engines.hlip.configs import get_config
from engines.hlip.model import HLIP, clip_loss
from engines.hlip.preprocess import network_input


class StudyData:
    """Prepared studies of one split in memory: uint8 images, report texts, MiniLM text vectors."""

    def __init__(self, data: Path, split: str = "train") -> None:
        meta = json.loads((data / "meta.json").read_text())
        t = np.load(data / "texts.npz")
        self.text_index = {str(s): i for i, s in enumerate(t["texts"])}
        self.text_emb = torch.from_numpy(t["emb"]).float()
        self.sets: dict[str, tuple[np.ndarray, list[dict]]] = {}
        for k in ("mri", "ct"):
            imgs = np.load(data / f"{k}.npz")["images"]
            keep = [i for i, m in enumerate(meta[k]) if m["split"] == split]
            self.sets[k] = (imgs[keep], [meta[k][i] for i in keep])

    def emb(self, texts: list[str]) -> torch.Tensor:
        return self.text_emb[[self.text_index[s] for s in texts]]

    def batch(self, kind: str, n: int, rng: np.random.Generator, patch_depth: int, augment: bool = True
              ) -> tuple[torch.Tensor, list[str]]:
        """``[n, N, 1, D, H, W]`` normalised input and one report text per study."""
        imgs, meta = self.sets[kind]
        idx = rng.choice(len(imgs), size=n, replace=len(imgs) < n)
        xs, texts = [], []
        for i in idx:
            x = imgs[i].astype(np.float32)  # [N, D, H, W] in 0..255
            flip = augment and rng.random() < 0.5
            if flip:
                x = x[..., ::-1]
            if augment:
                x = np.clip(x * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255)
            if x.shape[1] < patch_depth:
                x = np.repeat(x, int(math.ceil(patch_depth / x.shape[1])), axis=1)[:, :patch_depth]
            xs.append(network_input(x))
            pool = meta[i]["reports_flipped" if flip else "reports"]
            texts.append(pool[int(rng.integers(len(pool)))] if augment else pool[0])
        return torch.from_numpy(np.ascontiguousarray(np.stack(xs)))[:, :, None], texts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = train_parser("Train HLIP (demo or paper config).", None, steps=600)
    ap.add_argument("--mri-batch", type=int, default=4)
    ap.add_argument("--ct-batch", type=int, default=12)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this wall time")
    ap.add_argument("--save-every", type=int, default=100)
    add_run_args(ap, lr=5e-4, warmup=40)
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, object]:
    from engines.hlip.weights_io import save_weights

    torch.set_num_threads(args.threads)
    _distributed, rank, world, dev = init_distributed(torch.device(args.device))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed + rank)
    cfg = get_config(args.config)
    if cfg.text != "minilm":
        raise SystemExit("training here uses the frozen MiniLM text side (config text='minilm'); "
                         f"{args.config} has a BERT tower — fine-tune it with the authors' code")
    data = StudyData(args.data, "train")
    model = HLIP(cfg).to(dev)
    net: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, find_unused_parameters=False)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train_log.jsonl", "w") if rank == 0 else None  # noqa: SIM115 (closed below)
    t0 = time.time()
    losses: list[float] = []
    step = 0
    pd = cfg.patch_size[0]

    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        xm, tm = data.batch("mri", args.mri_batch, rng, pd)
        xc, tc = data.batch("ct", args.ct_batch, rng, pd)
        texts = tm + tc
        img, txt = net([xm.to(dev), xc.to(dev)], data.emb(texts).to(dev))
        loss = clip_loss(img, txt, model.logit_scale, text_ids=texts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if log is not None:
            log.write(json.dumps({"step": step, "loss": round(losses[-1], 5), "lr": lr_at(step),
                                  "logit_scale": round(float(model.logit_scale.detach().exp()), 3),
                                  "t": round(time.time() - t0, 1)}) + "\n")
            log.flush()
            if (step + 1) % args.save_every == 0:
                save_weights(model, args.out / "model.safetensors", cfg, {"step": str(step + 1)})
        if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes:
            break
    summary = {"steps": step + 1, "first_loss": losses[0], "last_loss": losses[-1],
               "mean_first_20": float(np.mean(losses[:20])), "mean_last_20": float(np.mean(losses[-20:])),
               "time_s": round(time.time() - t0, 1), "config": cfg.to_dict(),
               "hardware": f"{platform.machine()}, {args.threads} CPU thread(s)" if dev.type == "cpu"
               else torch.cuda.get_device_name(dev), "world_size": world,
               "train_mri_studies": len(data.sets["mri"][1]), "train_ct_studies": len(data.sets["ct"][1]),
               "args": {k: str(v) for k, v in vars(args).items()}}
    if rank == 0:
        save_weights(model, args.out / "model.safetensors", cfg, {"step": str(step + 1)})
        (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1))
        assert log is not None
        log.close()
    finish_distributed()
    return summary


def main(argv: list[str] | None = None) -> None:
    s = train(parse_args(argv))
    print(json.dumps({k: s[k] for k in ("steps", "first_loss", "last_loss", "mean_first_20", "mean_last_20",
                                        "time_s")}))


if __name__ == "__main__":
    main()
