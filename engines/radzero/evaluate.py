"""Evaluate RadZero weights zero-shot on the HELD-OUT split only (``test.npz`` written by :mod:`prepare`).

Usage::

    python -m engines.radzero.evaluate --weights resources/weights/radzero/model.safetensors \\
        --data data_prepared/radzero --out eval.json

Reports, as far as this data allows (the paper's tasks: zero-shot classification, grounding, segmentation):

* **Zero-shot classification**: for every class with both positive and negative held-out labels,
  P(positive) = softmax over the VL-CABS logits of "There is {finding}." and "There is no {finding}."
  (:func:`metrics.zero_shot_prob`); ROC AUC, and F1 / accuracy at P ≥ 0.5. Labels: the 14 NIH findings by
  the rule-based mapper of multires_cxr (unknown = left out) and COVID-19 from the ``finding`` column.
* **Grounding (pointing game)** and **segmentation (Dice)**: for every held-out image with a lung mask
  (lungVAE) or lung boxes, and every class prompt that is positive for it, the similarity map sigmoid(cos/τ)
  upsampled bilinearly to the image grid: hit when its maximum lies in the region; Dice of ``map ≥ θ`` with
  the region. θ was fixed on the **training** images before evaluation (:func:`choose_threshold_on_train`,
  stored in the weights' metadata) — never chosen here. Baselines: chance hit rate of a uniformly random
  point (mean region area fraction) and the Dice of an all-ones map. The region is the *lungs*, a proxy:
  this data has no lesion boxes/masks (the paper used lesion boxes/masks of ChestX-ray14, MS-CXR, RSNA, SIIM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.common.evaluate import evaluate_parser, publish
from engines.common.train import find_npz
from engines.radzero.metrics import (
    choose_threshold,
    dice,
    f1_accuracy,
    pointing_hit,
    roc_auc,
    zero_shot_prob,
)
from engines.radzero.model import RadZero, to_input
from engines.radzero.weights_io import load_model, set_metadata, threshold_of
from engines.weights import sha256_file

#: The paper's figures are NOT quoted: no copy of arXiv 2504.07416 was reachable offline to check them.
PAPER_FIGURES = ("unverified — RadZero's tables (zero-shot AUC/F1/ACC on CheXpert, ChestX-ray14, …; pointing "
                 "game on MS-CXR/ChestX-ray14; Dice on RSNA/SIIM) could not be read offline, so no number is "
                 "quoted; they are on different data (public benchmarks with lesion annotations) and not "
                 "comparable with the lung-region proxies here.")


@torch.no_grad()
def encode_images(model: RadZero, images: np.ndarray, batch: int = 16) -> torch.Tensor:
    """uint8 ``[N, S, S]`` → head-ready tokens ``[N, 1 + g·g, D]``."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).float() / 255.0
        out.append(model.encode_image(to_input(x, model.config)))
    return torch.cat(out)


@torch.no_grad()
def logits_and_maps(model: RadZero, v: torch.Tensor, text_emb: np.ndarray,
                    size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tokens ``[B, N+1, D]`` and text embeddings ``[T, 384]`` → (scaled logits ``[B, T]``, maps).

    Maps (when ``size`` is given): sigmoid of the patch scores, bilinearly upsampled (align_corners False) to
    ``size`` → ``[B, T, H, W]`` in (0, 1).
    """
    t = model.encode_text(torch.from_numpy(np.asarray(text_emb, np.float32)))
    logits, score = model.head(v, t)
    if size is None:
        return logits.numpy(), None
    g = model.config.grid
    b, nt, _ = score.shape
    up = F.interpolate(score.reshape(b * nt, 1, g, g), size=size, mode="bilinear", align_corners=False)
    return logits.numpy(), torch.sigmoid(up).reshape(b, nt, *size).numpy()


def positive_classes(d: np.lib.npyio.NpzFile, i: int) -> list[int]:
    """Indices into ``class_names`` positive for image ``i`` (NIH labels == 1, COVID-19 from the finding)."""
    n_nih = d["labels"].shape[1]
    out = [c for c in range(n_nih) if d["labels"][i, c] == 1]
    if int(d["covid"][i]) == 1:
        out.append(n_nih)
    return out


def grounding_pairs(model: RadZero, d: np.lib.npyio.NpzFile, has_key: str, mask_key: str,
                    v: torch.Tensor | None = None) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(image, class, similarity map [S, S], region [S, S]) for positive classes of images with a region."""
    pairs = []
    for i in np.nonzero(d[has_key])[0]:
        cls = positive_classes(d, int(i))
        if not cls:
            continue
        vi = v[i:i + 1] if v is not None else encode_images(model, d["images"][i:i + 1])
        _, maps = logits_and_maps(model, vi, d["prompt_pos_emb"][cls], d["images"].shape[1:])
        assert maps is not None
        pairs += [(int(i), c, maps[0, k], d[mask_key][i]) for k, c in enumerate(cls)]
    return pairs


def choose_threshold_on_train(weights: Path, data: Path, threads: int | None = None) -> dict[str, object]:
    """Pick the Dice threshold on the TRAINING images' lung masks and store it in the weights' metadata."""
    if threads:
        torch.set_num_threads(threads)
    model = load_model(weights)
    d = np.load(find_npz(data, model.config.image_size, "train", "radzero"))
    pairs = grounding_pairs(model, d, "has_mask", "lung_mask")
    theta, means = choose_threshold([p[2] for p in pairs], [p[3] for p in pairs])
    source = (f"grid 0.05..0.95 step 0.05, best mean Dice on {len(pairs)} (training image, positive prompt) pairs "
              "with lungVAE lung masks of the TRAINING split; fixed before evaluating the held-out split")
    set_metadata(weights, dice_threshold=f"{theta:.2f}", dice_threshold_source=source)
    return {"threshold": theta, "source": source, "train_mean_dice": {f"{k:.2f}": round(v, 4) for k, v in means.items()}}


def evaluate(weights: Path, data: Path, threads: int = 1) -> dict[str, object]:
    """Every number of the module docstring; a JSON-ready dict."""
    torch.set_num_threads(threads)
    model = load_model(weights)
    thr = threshold_of(weights)
    if thr is None:
        raise SystemExit(f"{weights} carries no Dice threshold chosen on training data; run "
                         "`python -m engines.radzero.evaluate --choose-threshold` (uses the TRAIN split) first")
    theta, theta_source = thr
    d = np.load(find_npz(data, model.config.image_size, "test", "radzero"))
    v = encode_images(model, d["images"])
    names = [str(x) for x in d["class_names"]]
    lp, _ = logits_and_maps(model, v, d["prompt_pos_emb"])
    ln, _ = logits_and_maps(model, v, d["prompt_neg_emb"])
    probs = zero_shot_prob(lp, ln)
    n_nih = d["labels"].shape[1]
    targets = np.concatenate([d["labels"], d["covid"][:, None].astype(np.float32)], axis=1)
    per_class: dict[str, dict[str, object]] = {}
    aucs = []
    for c, name in enumerate(names):
        known = targets[:, c] >= 0
        y = targets[known, c]
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        row: dict[str, object] = {"n_pos": n_pos, "n_neg": n_neg, "source": "finding column" if c == n_nih
                                  else "rule-mapped labels"}
        if n_pos and n_neg:
            auc = roc_auc(y, probs[known, c])
            f1, acc = f1_accuracy(y, probs[known, c])
            row.update(auc=round(auc, 4), f1=round(f1, 4), acc=round(acc, 4))
            aucs.append(auc)
        per_class[name] = row
    grounding: dict[str, object] = {}
    for region, has_key, mask_key in (("lung_mask", "has_mask", "lung_mask"), ("lung_boxes", "has_box", "box_mask")):
        pairs = grounding_pairs(model, d, has_key, mask_key, v)
        if not pairs:
            grounding[region] = {"pairs": 0}
            continue
        hits = [pointing_hit(s, r) for _, _, s, r in pairs]
        dices = [dice(s, r, theta) for _, _, s, r in pairs]
        by_class: dict[str, list[float]] = {}
        for (_, c, _, _), h in zip(pairs, hits, strict=True):
            by_class.setdefault(names[c], []).append(float(h))
        grounding[region] = {
            "pairs": len(pairs), "images": len({p[0] for p in pairs}),
            "pointing_game": round(float(np.mean(hits)), 4),
            "pointing_chance": round(float(np.mean([r.mean() for _, _, _, r in pairs])), 4),
            "pointing_by_class": {k: round(float(np.mean(x)), 4) for k, x in by_class.items()},
            "dice": round(float(np.mean(dices)), 4),
            "dice_all_ones_baseline": round(float(np.mean([dice(np.ones_like(r, np.float32), r, 0.5)
                                                           for _, _, _, r in pairs])), 4),
            "map_mean": round(float(np.mean([s.mean() for _, _, s, _ in pairs])), 4),
        }
    return {
        "engine": "radzero", "weights": str(weights), "weights_sha256": sha256_file(weights),
        "config": model.config.to_dict(), "split": "held-out (test.npz; engines/multires_cxr/split.json)",
        "test_images": int(len(d["images"])), "test_patients": int(len(set(d["patientids"].tolist()))),
        "tau": round(float(model.head_params.tau.detach()), 5),
        "classification": {"per_class": per_class, "mean_auc": round(float(np.mean(aucs)), 4) if aucs else None,
                           "auc_classes": len(aucs),
                           "prompts": "There is {finding}. vs There is no {finding}. (softmax of the two logits)"},
        "grounding": grounding, "dice_threshold": theta, "dice_threshold_source": theta_source,
        "paper_figures": PAPER_FIGURES,
    }


def format_table(res: dict[str, object]) -> str:
    """A plain-text table of :func:`evaluate`'s result."""
    cls = res["classification"]  # type: ignore[index]
    lines = [f"held-out split: {res['test_images']} images, {res['test_patients']} patients; τ = {res['tau']}",
             "zero-shot classification ('There is {x}.' vs 'There is no {x}.')",
             f"{'class':20s} {'n+':>4s} {'n-':>4s} {'AUC':>7s} {'F1':>6s} {'ACC':>6s}"]
    for name, v in cls["per_class"].items():  # type: ignore[index, union-attr]
        if "auc" in v:
            lines.append(f"{name:20s} {v['n_pos']:4d} {v['n_neg']:4d} {v['auc']:7.3f} {v['f1']:6.3f} {v['acc']:6.3f}")
    lines.append(f"{'mean AUC':20s} {'':4s} {'':4s} {str(cls['mean_auc']):>7s}   over {cls['auc_classes']} classes "
                 "with both labels held out (others: n/a)")
    lines.append(f"grounding / segmentation (positive-class prompts; Dice threshold θ = {res['dice_threshold']:.2f}, "
                 "chosen on TRAIN lung masks)")
    lines.append(f"{'region':12s} {'pairs':>5s} {'imgs':>4s} {'pointing':>8s} {'chance':>7s} {'Dice':>6s} "
                 f"{'all-ones':>8s}")
    for region, g in res["grounding"].items():  # type: ignore[union-attr]
        if g["pairs"]:
            lines.append(f"{region:12s} {g['pairs']:5d} {g['images']:4d} {g['pointing_game']:8.3f} "
                         f"{g['pointing_chance']:7.3f} {g['dice']:6.3f} {g['dice_all_ones_baseline']:8.3f}")
    lines.append("region = the lungs (proxy; no lesion annotations here). paper: " + PAPER_FIGURES)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = evaluate_parser("radzero", "Evaluate RadZero zero-shot on the held-out split.")
    ap.add_argument("--choose-threshold", action="store_true",
                    help="(re)choose the Dice threshold on the TRAIN split, store it in the weights, then stop")
    args = ap.parse_args(argv)
    if args.choose_threshold:
        print(json.dumps(choose_threshold_on_train(args.weights, args.data, args.threads), indent=1))
        return
    res = evaluate(args.weights, args.data, args.threads)
    publish(res, "engines.radzero.evaluate", argv, format_table(res), args.out or args.weights.with_name("eval.json"))


if __name__ == "__main__":
    main()
