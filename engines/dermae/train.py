"""Train the DERMAE pipeline stage by stage on prepared arrays (torch + numpy only).

Usage::

    python -m engines.dermae.train --stage all --data data_prepared/dermae --out runs/dermae
    python -m engines.dermae.train --stage student --variant kd --data data_prepared/dermae --out runs/dermae
    torchrun --nproc_per_node 4 -m engines.dermae.train --stage mae --config paper ...   (DDP)

Stages (each reads only ``<data>/<size>/train.npz`` and the outputs of earlier stages under ``--out``):

1. ``ae``: KL autoencoder, L1 + MSE + 1e-5·KL → ``<out>/ae/``; sets the latent scale factor (1/std).
2. ``ldm``: class-conditional latent DDPM (ε-MSE, 10 % label dropout for classifier-free guidance) → ``<out>/ldm/``.
3. ``sample``: DDIM (50 steps, η = 0, guidance 2) generates minority-class images until every class has as many
   training images as the majority (nevus) → ``<out>/synthetic.npz``, ``contact_sheet.png``, ``quality.json``.
4. ``mae``: MAE pre-training (75 % masking) of the ViT teacher on real + synthetic → ``<out>/mae/``.
5. ``teacher``: fine-tune the MAE encoder + head, cross-entropy on real + synthetic → ``<out>/teacher/``.
6. ``student --variant real|synth|kd``: the small CNN on real only / real + synthetic / real + synthetic with
   distillation from the teacher (``kd_loss``: T = 4, α = 0.7) → ``<out>/student_<variant>/``.

Every stage logs one JSON line per step to ``train_log.jsonl`` and writes ``model.safetensors`` (fp16, config and
kind in the metadata) and ``train_summary.json``. Under torchrun (``WORLD_SIZE`` set) it uses DDP (gloo on CPU,
nccl on CUDA); each rank draws its own random batches.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common.distributed import finish_distributed, init_distributed
from engines.common.train import add_run_args, find_npz, warmup_cosine
from engines.dermae.data import CLASSES, MEAN, STD
from engines.dermae.model import (
    CONFIGS,
    AutoEncoder,
    DDPMSchedule,
    DermaeConfig,
    LatentUNet,
    MaskedAutoencoderViT,
    StudentCNN,
    ViTClassifier,
    ae_loss,
    encoder_state_from_mae,
    kd_loss,
)
from engines.dermae.weights_io import load_model, read_meta, save_weights

#: default steps per stage for the demo run (2-core CPU, ~15 min in all)
DEFAULT_STEPS = {"ae": 400, "ldm": 800, "mae": 500, "teacher": 400, "student": 500}
DEFAULT_BATCH = {"ae": 32, "ldm": 32, "mae": 64, "teacher": 32, "student": 32}
DEFAULT_LR = {"ae": 2e-3, "ldm": 1e-3, "mae": 1.5e-3, "teacher": 5e-4, "student": 2e-3}


def load_train(data: Path, size: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real training images ``uint8 [N,S,S,3]`` and labels ``int64 [N]`` (the held-out side is never read)."""
    d = np.load(find_npz(data, size, "train", "dermae"))
    return d["images"][:limit], d["labels"][:limit]


def with_synthetic(images: np.ndarray, labels: np.ndarray, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Real + synthetic (``<out>/synthetic.npz``) images and labels."""
    s = np.load(out / "synthetic.npz")
    return np.concatenate([images, s["images"]]), np.concatenate([labels, s["labels"]])


def batch01(images: np.ndarray, idx: np.ndarray, gen: torch.Generator, augment: bool = True) -> torch.Tensor:
    """Images ``idx`` as float ``[B,3,S,S]`` in [0, 1]; augmentation: random flips, 90° rotations and a mild
    brightness/contrast/saturation jitter (dermoscopy has no canonical orientation)."""
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255.0
    if not augment:
        return x
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    bias = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.1
    grey = x.mean(1, keepdim=True)
    sat = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    return ((grey + (x - grey) * sat) * gain + bias).clamp(0, 1)


def affine_jitter(x: torch.Tensor, gen: torch.Generator, scale: float = 0.15, shift: float = 0.08) -> torch.Tensor:
    """Random zoom (× 1 ± ``scale``) and shift (± ``shift`` of the side) of ``x [B,3,S,S]``; borders replicate."""
    b = x.shape[0]
    z = 1 + (torch.rand(b, generator=gen) * 2 - 1) * scale
    t = (torch.rand(b, 2, generator=gen) * 2 - 1) * shift * 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / z
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def balanced_idx(labels: np.ndarray, b: int, gen: torch.Generator) -> np.ndarray:
    """``b`` indices into ``labels``: a class drawn uniformly, then an image of that class (balanced sampler)."""
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    cls = torch.randint(0, len(classes), (b,), generator=gen).numpy()
    pick = torch.rand(b, generator=gen).numpy()
    return np.array([members[c][int(u * len(members[c]))] for c, u in zip(cls, pick, strict=True)])


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights ``N / (C · n_c)`` (1 for a balanced set)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


def norm_student(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] → per-channel standardised (the student's input)."""
    return (x01 - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]


def norm_unit(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1] (autoencoder, MAE and teacher input)."""
    return x01 * 2 - 1


class Trainer:
    """Optimiser (AdamW, warm-up + cosine), optional DDP, per-step JSON log, fp16 safetensors at the end."""

    def __init__(self, args: argparse.Namespace, stage: str, model: torch.nn.Module, cfg: DermaeConfig,
                 kind: str, out_dir: Path) -> None:
        self.args, self.stage, self.cfg, self.kind, self.out_dir = args, stage, cfg, kind, out_dir
        self.distributed, self.rank, _world, self.device = init_distributed(torch.device(args.device))
        self.model = model.to(self.device)
        self.net: torch.nn.Module = model
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(model)
        self.steps = args.steps or int(DEFAULT_STEPS[stage] * args.scale)
        self.steps = max(1, self.steps)
        self.batch = args.batch_size or DEFAULT_BATCH[stage]
        lr = args.lr or DEFAULT_LR[stage]
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05 if stage in ("mae", "teacher") else 1e-4)
        warm = max(1, min(30, self.steps // 10))
        self.sched = warmup_cosine(self.opt, self.steps, warm)
        self.gen = torch.Generator().manual_seed(args.seed + 1000 * self.rank)
        self.lr = lr

    def fit(self, loss_fn: Callable[[torch.nn.Module, torch.Generator], torch.Tensor],
            extra_summary: dict[str, object] | None = None) -> dict[str, object]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.out_dir / "train_log.jsonl", "w") if self.rank == 0 else None  # noqa: SIM115
        losses: list[float] = []
        t0 = time.time()
        self.net.train()
        for step in range(1, self.steps + 1):
            loss = loss_fn(self.net, self.gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.stage}: loss became {loss.item()} at step {step}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.opt.step()
            self.sched.step()
            losses.append(float(loss.item()))
            if log is not None:
                rec = {"stage": self.stage, "step": step, "loss": round(losses[-1], 6),
                       "lr": self.sched.get_last_lr()[0], "time_s": round(time.time() - t0, 2)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if step % 50 == 0 or step == 1:
                    print(json.dumps(rec), flush=True)
        self.model.eval()
        summary: dict[str, object] = {
            "stage": self.stage, "steps": self.steps, "batch_size": self.batch, "lr": self.lr,
            "config": self.cfg.to_dict(), "seed": self.args.seed, "time_s": round(time.time() - t0, 1),
            "hardware": (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
                         if self.device.type == "cpu" else torch.cuda.get_device_name(self.device)),
            "torch": torch.__version__,
            "command": "python -m engines.dermae.train " + " ".join(self.args.argv),
            "first_loss": losses[0], "last_loss": losses[-1],
            "first_20_mean": float(np.mean(losses[:20])), "last_20_mean": float(np.mean(losses[-20:])),
            **(extra_summary or {}),
        }
        if self.rank == 0:
            assert log is not None
            log.close()
            save_weights(self.model.cpu(), self.out_dir / "model.safetensors", self.cfg, self.kind,
                         {"steps": str(self.steps), "stage": self.stage})
            (self.out_dir / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        summary["losses"] = losses
        return summary


def _idx(n: int, b: int, gen: torch.Generator) -> np.ndarray:
    return torch.randint(0, n, (b,), generator=gen).numpy()


# ---- stages --------------------------------------------------------------------------------------------
def stage_ae(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    images, _ = load_train(args.data, cfg.image_size, args.limit)
    model = AutoEncoder(cfg)
    tr = Trainer(args, "ae", model, cfg, "ae", args.out / "ae")

    def loss_fn(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        x = norm_unit(batch01(images, _idx(len(images), tr.batch, gen), gen)).to(tr.device)
        return ae_loss(net, x)  # type: ignore[arg-type]

    # set the latent scale before saving: fit() saves at the end, so compute it in a wrapper
    def fit_and_scale() -> dict[str, object]:
        s = tr.fit(loss_fn)
        with torch.no_grad():
            z = torch.cat([model.encode(norm_unit(batch01(images, np.arange(i, min(i + 64, len(images))),
                                                            tr.gen, False)))[0]
                           for i in range(0, len(images), 64)])
            model.scale_factor.fill_(1.0 / float(z.std()))
            rec = torch.cat([model.decode(model.encode(norm_unit(batch01(images, np.arange(i, min(i + 64, len(images))),
                                                                          tr.gen, False)))[0])
                             for i in range(0, len(images), 64)])
            x_all = norm_unit(batch01(images, np.arange(len(images)), tr.gen, False))
            mae_px = float((rec.clamp(-1, 1) - x_all).abs().mean() * 127.5)
        s["latent_scale_factor"] = float(model.scale_factor)
        s["train_recon_mean_abs_error_8bit"] = round(mae_px, 2)
        if tr.rank == 0:
            save_weights(model, tr.out_dir / "model.safetensors", cfg, "ae", {"steps": str(tr.steps), "stage": "ae"})
            (tr.out_dir / "train_summary.json").write_text(
                json.dumps({k: v for k, v in s.items() if k != "losses"}, indent=1) + "\n")
        return s

    return fit_and_scale()


def _latents(ae: AutoEncoder, images: np.ndarray) -> torch.Tensor:
    """Scaled latent means ``[N, z, S/4, S/4]`` of uint8 images (no augmentation)."""
    g = torch.Generator()
    with torch.no_grad():
        return torch.cat([ae.encode(norm_unit(batch01(images, np.arange(i, min(i + 64, len(images))), g, False)))[0]
                          for i in range(0, len(images), 64)]) * ae.scale_factor


def stage_ldm(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    images, labels = load_train(args.data, cfg.image_size, args.limit)
    ae = load_model(args.out / "ae" / "model.safetensors", "ae")
    # latents of the 8 dihedral views (flips × 90° rotations): augmentation done once, in latent space
    views = []
    for k in range(4):
        for flip in (False, True):
            im = np.rot90(images, k, axes=(1, 2))
            views.append(np.ascontiguousarray(im[:, :, ::-1] if flip else im))
    z_all = torch.cat([_latents(ae, v) for v in views])  # type: ignore[arg-type]
    y_all = torch.from_numpy(np.tile(labels, len(views)))
    model = LatentUNet(cfg)
    sched = DDPMSchedule(cfg.timesteps)
    tr = Trainer(args, "ldm", model, cfg, "ldm", args.out / "ldm")

    def loss_fn(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        i = torch.from_numpy(_idx(len(z_all), tr.batch, gen))
        return sched.loss(net, z_all[i].to(tr.device), y_all[i].to(tr.device), 0.1, gen)

    return tr.fit(loss_fn, {"latent_views": len(views), "train_images": len(images)})


def stage_sample(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    """Generate minority-class images to balance the classes; contact sheet; image-quality figures."""
    from engines.dermae.quality import contact_sheet, quality_report

    images, labels = load_train(args.data, cfg.image_size, args.limit)
    ae = load_model(args.out / "ae" / "model.safetensors", "ae")
    unet = load_model(args.out / "ldm" / "model.safetensors", "ldm")
    sched = DDPMSchedule(cfg.timesteps)
    counts = np.bincount(labels, minlength=cfg.num_classes)
    target = int(counts.max()) if args.synthetic_per_class is None else None
    gen = torch.Generator().manual_seed(args.seed + 7)
    syn_imgs, syn_labels = [], []
    t0 = time.time()
    for c in range(cfg.num_classes):
        n = (target - int(counts[c])) if target is not None else int(args.synthetic_per_class)
        n = max(n, 0)
        for i in range(0, n, 64):
            b = min(64, n - i)
            y = torch.full((b,), c, dtype=torch.long)
            z = sched.ddim_sample(unet, y, (cfg.z_channels, cfg.image_size // 4, cfg.image_size // 4),
                                  steps=args.ddim_steps, guidance=args.guidance, generator=gen)
            with torch.no_grad():
                x = ae.decode(z / ae.scale_factor)  # type: ignore[operator]
            syn_imgs.append(((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
            syn_labels.append(np.full(b, c, dtype=np.int64))
            print(f"sampled {c}:{i + b}/{n} ({time.time() - t0:.0f} s)", flush=True)
    # a few nevus samples too, for the contact sheet only (not added to training)
    y = torch.full((8,), CLASSES.index("nevus"), dtype=torch.long)
    z = sched.ddim_sample(unet, y, (cfg.z_channels, cfg.image_size // 4, cfg.image_size // 4),
                          steps=args.ddim_steps, guidance=args.guidance, generator=gen)
    with torch.no_grad():
        nev = ((ae.decode(z / ae.scale_factor).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # type: ignore[operator]
    si = np.concatenate(syn_imgs) if syn_imgs else np.zeros((0, *images.shape[1:]), np.uint8)
    sl = np.concatenate(syn_labels) if syn_labels else np.zeros(0, np.int64)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "synthetic.npz", images=si, labels=sl)
    contact_sheet(images, labels, si, sl, nev, args.out / "contact_sheet.png", seed=args.seed)
    q = quality_report(ae, images, labels, si, sl)  # type: ignore[arg-type]
    q.update({"generated": {CLASSES[c]: int((sl == c).sum()) for c in range(cfg.num_classes)},
              "real_train": {CLASSES[c]: int(counts[c]) for c in range(cfg.num_classes)},
              "ddim_steps": args.ddim_steps, "guidance": args.guidance, "time_s": round(time.time() - t0, 1)})
    (args.out / "quality.json").write_text(json.dumps(q, indent=1) + "\n")
    print(json.dumps(q, indent=1))
    return q


def stage_mae(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    images, labels = with_synthetic(*load_train(args.data, cfg.image_size, args.limit), args.out)
    model = MaskedAutoencoderViT(cfg)
    tr = Trainer(args, "mae", model, cfg, "mae", args.out / "mae")

    def loss_fn(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        x = norm_unit(batch01(images, _idx(len(images), tr.batch, gen), gen)).to(tr.device)
        return net(x, gen)[0]

    return tr.fit(loss_fn, {"train_images_real_plus_synthetic": len(images), "mask_ratio": cfg.mask_ratio})


def stage_teacher(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    images, labels = with_synthetic(*load_train(args.data, cfg.image_size, args.limit), args.out)
    model = ViTClassifier(cfg)
    mae_path = args.out / "mae" / "model.safetensors"
    pretrained = mae_path.exists() and not args.no_pretrain
    if pretrained:
        from engines.weights import load_safetensors

        state = {k: v.float() for k, v in encoder_state_from_mae(load_safetensors(mae_path)).items()}
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
        model.load_state_dict(state, strict=True)
    tr = Trainer(args, "teacher", model, cfg, "teacher", args.out / (args.name or "teacher"))

    def loss_fn(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        i = _idx(len(images), tr.batch, gen)
        x = norm_unit(batch01(images, i, gen)).to(tr.device)
        return F.cross_entropy(net(x), torch.from_numpy(labels[i]).to(tr.device), label_smoothing=0.1)

    return tr.fit(loss_fn, {"train_images_real_plus_synthetic": len(images), "mae_pretrained": pretrained})


def stage_student(args: argparse.Namespace, cfg: DermaeConfig) -> dict[str, object]:
    variant = args.variant
    images, labels = load_train(args.data, cfg.image_size, args.limit)
    n_real = len(images)
    if variant in ("synth", "kd"):
        images, labels = with_synthetic(images, labels, args.out)
    teacher = load_model(args.out / "teacher" / "model.safetensors", "teacher") if variant == "kd" else None
    model = StudentCNN(cfg)
    tr = Trainer(args, "student", model, cfg, "student", args.out / (args.name or f"student_{variant}"))
    # class balance (issue 18): either every batch drawn class-balanced, or inverse-frequency weights in the loss
    weight = class_weights(labels, cfg.num_classes).to(tr.device) if args.balance == "weights" else None
    # the teacher sees the batch at its own training size (64 px for the shipped teacher)
    t_size = read_meta(args.out / "teacher" / "model.safetensors")[0].image_size if teacher is not None else None

    def loss_fn(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        i = balanced_idx(labels, tr.batch, gen) if args.balance == "sampler" else _idx(len(images), tr.batch, gen)
        x01 = batch01(images, i, gen)
        if args.jitter:
            x01 = affine_jitter(x01, gen)
        y = torch.from_numpy(labels[i]).to(tr.device)
        logits = net(norm_student(x01).to(tr.device))
        if teacher is None:
            return F.cross_entropy(logits, y, weight=weight, label_smoothing=args.label_smoothing)
        with torch.no_grad():
            xt = x01 if x01.shape[-1] == t_size else F.interpolate(x01, size=(t_size, t_size), mode="area")
            t_logits = teacher.to(tr.device)(norm_unit(xt).to(tr.device))
        return kd_loss(logits, t_logits, y, args.temperature, args.alpha, class_weight=weight)

    return tr.fit(loss_fn, {"variant": variant, "train_images_real": n_real,
                            "train_images_synthetic": len(images) - n_real,
                            "balance": args.balance, "affine_jitter": bool(args.jitter),
                            "label_smoothing": args.label_smoothing,
                            "train_counts": {CLASSES[c]: int((labels == c).sum()) for c in range(cfg.num_classes)},
                            "kd": {"temperature": args.temperature, "alpha": args.alpha} if teacher else None})


STAGES = {"ae": stage_ae, "ldm": stage_ldm, "sample": stage_sample, "mae": stage_mae, "teacher": stage_teacher,
          "student": stage_student}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the DERMAE pipeline (one stage or all).")
    ap.add_argument("--stage", choices=[*STAGES, "all"], required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    ap.add_argument("--variant", choices=["real", "synth", "kd"], default="kd", help="student training data/loss")
    ap.add_argument("--name", default=None, help="output sub-folder (default: the stage / student_<variant>)")
    ap.add_argument("--steps", type=int, default=None, help="override the stage's default steps")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every default step count")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.7)
    ap.add_argument("--balance", choices=["sampler", "weights", "none"], default="sampler",
                    help="student class balance: class-balanced batches, inverse-frequency loss weights, or none")
    ap.add_argument("--jitter", action="store_true", help="student: random zoom/shift augmentation")
    ap.add_argument("--label-smoothing", type=float, default=0.0, help="student cross-entropy label smoothing")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--synthetic-per-class", type=int, default=None, help="fixed count instead of balancing")
    ap.add_argument("--no-pretrain", action="store_true", help="teacher from scratch (ablation)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N real training images")
    add_run_args(ap, lr=None, weight_decay=None)
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = CONFIGS[args.config]
    order = ["ae", "ldm", "sample", "mae", "teacher", "student"] if args.stage == "all" else [args.stage]
    t0 = time.time()
    for st in order:
        if st == "student" and args.stage == "all":
            for v in ("real", "synth", "kd"):
                args.variant = v
                s = STAGES[st](args, cfg)
                print(f"== student_{v}: {s.get('steps')} steps, loss {s.get('first_loss')} → {s.get('last_loss')} "
                      f"({time.time() - t0:.0f} s total)", flush=True)
            continue
        s = STAGES[st](args, cfg)
        print(f"== {st}: done ({time.time() - t0:.0f} s total)", flush=True)
    finish_distributed()


if __name__ == "__main__":
    main()
