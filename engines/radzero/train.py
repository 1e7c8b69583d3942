"""Train RadZero on prepared arrays with the multi-positive InfoNCE loss (torch + numpy only).

Usage::

    python -m engines.radzero.train --data data_prepared/radzero --config demo --steps 1400 --out runs/radzero
    torchrun --nproc_per_node 4 -m engines.radzero.train --data ... --config demo --steps 5000 --out ...

Reads only ``<data>/<size>/train.npz`` (written by :mod:`engines.radzero.prepare`). Each step: a batch of
images (random affine + contrast jitter, :func:`engines.common.train.augment_grey`, no flips — left/right
words must stay true), every minimal sentence of those images (pre-computed all-MiniLM-L6-v2 embeddings, the
encoder frozen), positives = an image's own sentences (by text, so "There is pneumonia." of two images is
positive for both), loss :func:`engines.radzero.head.mp_nce` on VL-CABS logits / τ. τ is learnable (init 0.07,
clamped to [0.01, 1]). AdamW, warm-up + cosine. Demo config: everything in the model is trained (the ViT from
scratch: no pre-trained X-ray ViT offline); the paper config freezes ``vision_model`` as the authors do.

Anatomy term (ours, issue 18; not in the paper): for training images with a lung region (the filled lung fields
``lung_field`` of the prepared data — each lungVAE mask's lungs replaced by their convex hulls, so consolidated
lung counts as lung — or the raw lungVAE mask in older prepared data; else the union of the lung boxes; moved with
the image's random affine), the VL-CABS attention of every positive
sentence over the patch tokens should fall inside the lungs: ``L_lung = mean −log(Σ_i a_i r_i + 1e-4)`` with
``a = softmax_i(cos/τ)`` over patches and ``r_i`` the lung fraction of token i; loss = MP-NCE +
``--lung-weight`` · L_lung. Only training-split regions are used. ``--init`` warm-starts from a weights file
(every tensor whose name and shape fit; e.g. the 16 × 16 patch model before the local stem was added).

Logs one JSON line per step to ``<out>/train_log.jsonl``; writes ``<out>/model.safetensors`` (fp16, config
in the metadata) and ``<out>/train_summary.json``. Afterwards the Dice threshold is chosen on the *training*
images (:func:`engines.radzero.evaluate.choose_threshold_on_train`) and stored in the weights' metadata —
never on the held-out split. Under torchrun (``WORLD_SIZE`` set) it uses DDP (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common import train as scaffold
from engines.radzero.head import mp_nce
from engines.radzero.model import CONFIGS, RadZero, RadZeroConfig, to_input
from engines.radzero.weights_io import save_weights
from engines.weights import load_safetensors

TAU_MIN, TAU_MAX = 0.01, 1.0


class SentenceBatches:
    """Prepared arrays: images uint8 ``[N, S, S]`` and per-image sentence indices into ``sent_emb [M, 384]``."""

    def __init__(self, npz: Path, limit: int | None = None) -> None:
        d = np.load(npz)
        self.images = torch.from_numpy(d["images"][:limit])
        self.sent_emb = torch.from_numpy(d["sent_emb"].astype(np.float32))
        ptr, idx = d["img_sent_ptr"], d["img_sent_idx"]
        self.sents = [idx[ptr[i]:ptr[i + 1]].tolist() for i in range(len(self.images))]
        n = len(self.images)
        has_mask, has_box = d["has_mask"][:n].astype(bool), d["has_box"][:n].astype(bool)
        # the term's region: the FILLED lung fields when prepared (``lung_field``), else the lungVAE mask (aerated
        # lung, older prepared data); the lung boxes where an image has no mask
        filled = "lung_field" in d.files
        self.region_kind = (f"{d['lung_region']} lung fields (engines.common.lung_fields.fill_fields of the lungVAE "
                            "masks)" if filled else "lungVAE masks (aerated lung)") + ", else the lung boxes"
        masks = d["lung_field"] if filled else d["lung_mask"]
        region = np.where(has_mask[:, None, None], masks[:n], d["box_mask"][:n])
        self.regions = torch.from_numpy(region.astype(np.float32))  # [N, S, S] 0/1 (zeros: none)
        self.has_region = torch.from_numpy(has_mask | has_box)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, ids: list[int], max_sent: int, gen: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor,
                                                                                        torch.Tensor]:
        """(images in [0, 1] ``[B, 1, S, S]``, sentence embeddings ``[T, 384]``, positives ``[B, T]`` bool).

        Each image contributes at most ``max_sent`` of its sentences (a random subset); the batch's sentences
        are the union, and positives are judged on every image's *full* sentence set.
        """
        chosen: list[int] = []
        for i in ids:
            s = self.sents[i]
            pick = s if len(s) <= max_sent else list(gen.choice(s, size=max_sent, replace=False))
            chosen += [j for j in pick if j not in chosen]
        pos = torch.tensor([[j in set(self.sents[i]) for j in chosen] for i in ids], dtype=torch.bool)
        x = self.images[ids].float()[:, None] / 255.0
        return x, self.sent_emb[chosen], pos


AUG_MEAN, AUG_STD = 0.5, 0.25  # the space the augmentation's jitter was tuned in (multires_cxr's)

def augment01(x01: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The shared grey augmentation applied in multires_cxr's normalised space (``(x − 0.5) / 0.25``), returned in
    [0, 1] space."""
    x = scaffold.augment_grey((x01 - AUG_MEAN) / AUG_STD, gen, (0.0 - AUG_MEAN) / AUG_STD)
    return (x * AUG_STD + AUG_MEAN).clamp(-0.5, 1.5)


def region_tokens(regions: torch.Tensor, theta: torch.Tensor | None, grid: int) -> torch.Tensor:
    """Lung regions ``[B, S, S]`` (0/1), moved by the augmentation's affine ``theta`` ``[B, 2, 3]`` (None: none),
    as the lung fraction of every token ``[B, grid·grid]`` (area average, row-major)."""
    r = regions[:, None]
    if theta is not None:
        g = F.affine_grid(theta, list(r.shape), align_corners=False)
        r = F.grid_sample(r, g, align_corners=False, padding_mode="zeros")
    return F.adaptive_avg_pool2d(r, grid).flatten(1)


def lung_attention_loss(scores: torch.Tensor, pos: torch.Tensor, region: torch.Tensor,
                        has_region: torch.Tensor) -> torch.Tensor:
    """``mean −log(Σ_i softmax(scores)_i · region_i + 1e-4)`` over positive pairs of images with a region.

    Args:
        scores: patch scores cos/τ ``[B, T, N]``; pos: ``[B, T]`` bool; region: ``[B, N]`` lung fraction per
            token; has_region: ``[B]`` bool. Returns a scalar (0 when no pair qualifies).
    """
    mass = (scores.softmax(-1) * region[:, None, :]).sum(-1)  # [B, T]
    use = pos & has_region[:, None]
    if not bool(use.any()):
        return scores.sum() * 0.0
    return -torch.log(mass[use] + 1e-4).mean()


def warm_start(model: RadZero, path: Path) -> list[str]:
    """Copy every tensor of ``path`` whose name and shape fit into ``model``; returns the names left as built."""
    sd = load_safetensors(path, None)
    own = model.state_dict()
    fit = {k: v.to(own[k].dtype) for k, v in sd.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fit, strict=False)
    return sorted(set(own) - set(fit))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = scaffold.train_parser("Train RadZero (MP-NCE, VL-CABS).", sorted(CONFIGS), steps=1400, batch_size=16)
    ap.add_argument("--max-sentences", type=int, default=6, help="sentences per image per step")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--no-threshold", action="store_true", help="skip choosing the Dice threshold afterwards")
    ap.add_argument("--init", type=Path, default=None, help="warm start from this weights file (fitting tensors)")
    ap.add_argument("--freeze-vision", action="store_true",
                    help="keep vision_model as loaded (the paper freezes its pre-trained ViT; use with --init)")
    ap.add_argument("--lung-weight", type=float, default=1.0, help="weight of the lung-attention term (0: off)")
    scaffold.add_run_args(ap, lr=5e-4, warmup=50)
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, object]:
    """Run training; returns the summary (also written to ``<out>/train_summary.json``)."""
    distributed, rank, world, device = scaffold.start_run(args, seed_per_rank=False)  # same init on every rank
    config: RadZeroConfig = CONFIGS[args.config]
    if config.text_model != "external":
        raise SystemExit("this script trains configs with pre-computed sentence embeddings (demo); the paper "
                         "config needs MPNet token ids and its tokenizer, which are not available offline")
    ds = SentenceBatches(scaffold.find_npz(args.data, config.image_size, "train", "radzero"), args.limit)
    model = RadZero(config)
    fresh = warm_start(model, args.init) if args.init else None
    if args.freeze_vision:
        model.vision_model.requires_grad_(False)
    model = model.to(device)
    net: torch.nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    sched = scaffold.warmup_cosine(opt, args.steps, args.warmup)
    rng = np.random.default_rng(args.seed + 1000 * rank)
    gen = torch.Generator().manual_seed(args.seed + 1000 * rank)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train_log.jsonl", "w") if rank == 0 else None  # noqa: SIM115
    losses: list[float] = []
    t0 = time.time()
    order = rng.permutation(len(ds)).tolist()
    shard = order[rank::world]
    pos_in_epoch = 0
    net.train()
    for step in range(1, args.steps + 1):
        if pos_in_epoch + args.batch_size > len(shard):
            shard = rng.permutation(len(ds)).tolist()[rank::world]
            pos_in_epoch = 0
        ids = shard[pos_in_epoch:pos_in_epoch + args.batch_size]
        pos_in_epoch += args.batch_size
        x, t, pos = ds.batch(ids, args.max_sentences, rng)
        theta = None
        if not args.no_augment:
            theta = scaffold.random_affine(len(ids), torch.Generator().set_state(gen.get_state()))
            x = augment01(x, gen)
        region = region_tokens(ds.regions[ids], theta, config.grid).to(device)
        has_region = ds.has_region[ids].to(device)
        x, t, pos = to_input(x, config).to(device), t.to(device), pos.to(device)
        logits, scores = net(x, t)
        nce = mp_nce(logits, pos)
        lung = lung_attention_loss(scores, pos, region, has_region)
        loss = nce + args.lung_weight * lung
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.head_params.loss_temperature.clamp_(math.log(TAU_MIN), math.log(TAU_MAX))
        losses.append(loss.item())
        if log is not None:
            rec = {"step": step, "loss": round(losses[-1], 6), "mp_nce": round(nce.item(), 6),
                   "lung": round(lung.item(), 6), "lr": sched.get_last_lr()[0],
                   "tau": round(float(model.head_params.tau.detach()), 5), "sentences": int(t.shape[0]),
                   "time_s": round(time.time() - t0, 2)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if step % 20 == 0 or step == 1:
                print(json.dumps(rec), flush=True)
    summary: dict[str, object] = {
        "steps": args.steps, "batch_size": args.batch_size, "max_sentences": args.max_sentences,
        "world_size": world, "config": config.to_dict(), "lr": args.lr, "weight_decay": args.weight_decay,
        "augment": not args.no_augment, "seed": args.seed, "train_images": len(ds),
        "time_s": round(time.time() - t0, 1),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU thread(s)"
                    if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "command": "python -m engines.radzero.train " + " ".join(sys.argv[1:]),
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "first_50_mean": float(np.mean(losses[:50])) if losses else None,
        "last_50_mean": float(np.mean(losses[-50:])) if losses else None,
        "tau": float(model.head_params.tau.detach()),
        "lung_weight": args.lung_weight, "lung_region": ds.region_kind, "freeze_vision": bool(args.freeze_vision or config.freeze_vision), "init": str(args.init) if args.init else None,
        "init_left_as_built": fresh,
    }
    if rank == 0:
        assert log is not None
        log.close()
        weights = args.out / "model.safetensors"
        save_weights(model, weights, {"steps": str(args.steps)})
        if not args.no_threshold:
            try:
                from engines.radzero.evaluate import choose_threshold_on_train

                summary["dice_threshold"] = choose_threshold_on_train(weights, args.data)
            except Exception as exc:  # the weights are saved; the threshold can be chosen again later
                print(f"threshold choice failed: {exc!r}", flush=True)
    return scaffold.finish_run(summary, losses, args.out if rank == 0 else None)


def main(argv: list[str] | None = None) -> None:
    scaffold.train_main(train, parse_args, argv)


if __name__ == "__main__":
    main()
