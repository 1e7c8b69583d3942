"""Train the multi-resolution CXR network on prepared arrays (torch + numpy only).

Usage::

    python -m engines.multires_cxr.train --data data_prepared/multires_cxr --steps 600 --batch-size 8 \
        --out runs/multires_cxr            # config demo_findings: the data's findings, lung-field pooling
    torchrun --nproc_per_node 4 -m engines.multires_cxr.train --data ... --config paper --steps 20000 --out ...

``--data`` is the folder written by :mod:`prepare` (``<data>/<input_size>/train.npz``, or ``<data>/train.npz``).
Only the *train* side is read. Loss: per-class binary cross-entropy on the LSE-LBA-pooled probabilities (passed as
logits), with unknown labels (-1) masked out; pooled over the lung fields unless ``--whole-image``. Logs one JSON line per step to ``<out>/train_log.jsonl`` and writes
``<out>/model.safetensors`` (fp16, the config in the file's metadata) and ``<out>/train_summary.json``.
Under torchrun (``WORLD_SIZE`` set) it uses DDP: gloo on CPU, nccl on CUDA, a DistributedSampler.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from engines.common import train as scaffold
from engines.multires_cxr.data import MEAN, STD
from engines.multires_cxr.model import CONFIGS, MultiResConfig, MultiResCXR
from engines.multires_cxr.weights_io import save_weights


class CXRArrays(Dataset):
    """Prepared arrays: item = (image float32 ``[1, S, S]`` normalised, labels float32 ``[C]`` with -1 unknown,
    lung-field instances float32 ``[1, S/4, S/4]``).

    ``labels``: the finding names to read from the file's ``label_names`` columns, in this order.
    """

    def __init__(self, npz: Path, labels: tuple[str, ...], limit: int | None = None) -> None:
        d = np.load(npz)
        names = [str(n) for n in d["label_names"]]
        missing = [n for n in labels if n not in names]
        if missing:
            raise ValueError(f"{npz} has no labels {missing}; re-run engines.multires_cxr.prepare")
        self.images = torch.from_numpy(d["images"][:limit])
        cols = [names.index(n) for n in labels]
        self.labels = torch.from_numpy(d["labels"][:limit][:, cols].astype(np.float32))
        s = self.images.shape[-1] // 4
        field = d["lung_field"][:limit] if "lung_field" in d.files else np.ones((len(self.images), s, s), np.uint8)
        self.field = torch.from_numpy(field.astype(np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (self.images[i].float() / 255.0 - MEAN) / STD
        return x[None], self.labels[i], self.field[i][None]


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """:func:`engines.common.train.augment_grey` in this engine's normalised space ``(x − MEAN) / STD``.

    The affine is small (±7°, ±6 % shift), so the lung-field instances are left where they were.
    """
    return scaffold.augment_grey(x, gen, background=(0.0 - MEAN) / STD)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over known labels. ``logits, labels [B, 14]`` (labels -1 = unknown) → scalar."""
    known = (labels >= 0).float()
    loss = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = scaffold.train_parser("Train multires_cxr (Yao et al. 2018).", sorted(CONFIGS), steps=600, batch_size=16)
    ap.set_defaults(config="demo_findings")
    ap.add_argument("--whole-image", action="store_true", help="pool over the whole map, not the lung fields")
    ap.add_argument("--r0", type=float, default=None, help="override the config's LSE-LBA r0")
    ap.add_argument("--input-size", type=int, default=None, help="override the config's input size")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--no-augment", action="store_true")
    scaffold.add_run_args(ap, lr=1e-3, weight_decay=1e-4, threads=1)
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, object]:
    """Run training; returns the summary (also written to ``<out>/train_summary.json``)."""
    distributed, rank, world, device = scaffold.start_run(args)
    base = CONFIGS[args.config]
    over: dict[str, object] = {}
    if args.r0 is not None:
        over["r0"] = args.r0
    if args.input_size is not None:
        over["input_size"] = args.input_size
    over["extra"] = {**base.extra, "pool_region": "whole_map" if args.whole_image else "lung_fields"}
    config = MultiResConfig.from_dict({**base.to_dict(), **over})
    ds = CXRArrays(scaffold.find_npz(args.data, config.input_size, "train", "multires_cxr"), config.labels,
                   args.limit)
    sampler = (DistributedSampler(ds, shuffle=True, seed=args.seed) if distributed
               else RandomSampler(ds, replacement=True, num_samples=10**9))
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler, drop_last=len(ds) >= args.batch_size)
    model: torch.nn.Module = MultiResCXR(config).to(device)
    net = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warm = max(1, min(20, args.steps // 10))
    sched = scaffold.warmup_cosine(opt, args.steps, warm)
    gen = torch.Generator().manual_seed(args.seed + 1000 * rank)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_log.jsonl"
    log = open(log_path, "w") if rank == 0 else None  # noqa: SIM115
    losses: list[float] = []
    t0 = time.time()
    step, epoch = 0, 0
    net.train()
    while step < args.steps:
        if distributed:
            sampler.set_epoch(epoch)  # type: ignore[union-attr]
        for x, y, field in loader:
            if not args.no_augment:
                x = augment(x, gen)
            x, y = x.to(device), y.to(device)
            logits, _ = net(x, None if args.whole_image else field.to(device))
            loss = masked_bce(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if log is not None:
                r = model.pool.r.detach()
                rec = {"step": step, "loss": round(losses[-1], 6), "lr": sched.get_last_lr()[0],
                       "r_mean": round(float(r.mean()), 4), "time_s": round(time.time() - t0, 2)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if step % 10 == 0 or step == 1:
                    print(json.dumps(rec), flush=True)
            if step >= args.steps:
                break
        epoch += 1
    summary: dict[str, object] = {
        "steps": step, "batch_size": args.batch_size, "world_size": world, "config": config.to_dict(),
        "lr": args.lr, "augment": not args.no_augment, "seed": args.seed,
        "pool_region": "whole map" if args.whole_image else "lung fields (engines.common.lung_fields)",
        "train_images": len(ds), "time_s": round(time.time() - t0, 1),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
                    if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "command": "python -m engines.multires_cxr.train " + " ".join(sys.argv[1:]),
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
    }
    if rank == 0:
        assert log is not None
        log.close()
        save_weights(model, args.out / "model.safetensors", config,
                     {"steps": str(step), "engine": "multires_cxr"})
    return scaffold.finish_run(summary, losses, args.out if rank == 0 else None)


def main(argv: list[str] | None = None) -> None:
    scaffold.train_main(train, parse_args, argv)


if __name__ == "__main__":
    main()
