"""Evaluate DERMAE student or teacher weights on the HELD-OUT split only (``test.npz`` from :mod:`prepare`).

Usage::

    python -m engines.dermae.evaluate --weights resources/weights/dermae/model.safetensors --data data_prepared/dermae
    python -m engines.dermae.evaluate --weights resources/weights/dermae/teacher.safetensors --data data_prepared/dermae

The model kind (student CNN or ViT teacher) and config come from the file's metadata. Reports, on the held-out
images (never used for training, model selection or thresholds — the prediction is the arg-max class):
balanced accuracy, per-class F1 (melanoma and seborrheic keratosis are the minority classes), one-vs-rest
ROC AUC per class and their mean (macro AUC), and the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engines.common.evaluate import evaluate_parser, publish
from engines.common.train import find_npz
from engines.dermae.data import CLASSES, SHORT, to_tensor, to_unit
from engines.dermae.metrics import auc_per_class, balanced_accuracy, confusion, f1_per_class
from engines.dermae.weights_io import load_model, read_meta, sha256

MINORITY = ("melanoma", "seborrheic_keratosis")


@torch.no_grad()
def predict(model: torch.nn.Module, kind: str, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 ``[N, S, S, 3]`` → class probabilities ``[N, C]`` (student: standardised input; teacher: [-1, 1])."""
    prep = to_tensor if kind == "student" else to_unit
    out = [torch.softmax(model(prep(images[i:i + batch])), 1).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float64)


def scores(y: np.ndarray, probs: np.ndarray) -> dict[str, object]:
    """Every metric of the module docstring for labels ``y [N]`` and ``probs [N, C]``."""
    c = probs.shape[1]
    pred = probs.argmax(1)
    f1 = f1_per_class(y, pred, c)
    auc = auc_per_class(y, probs)
    return {
        "balanced_accuracy": round(balanced_accuracy(y, pred, c), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "f1": {CLASSES[k]: round(float(f1[k]), 4) for k in range(c)},
        "macro_f1": round(float(np.nanmean(f1)), 4),
        "minority_f1_mean": round(float(np.nanmean([f1[CLASSES.index(m)] for m in MINORITY])), 4),
        "auc": {CLASSES[k]: round(float(auc[k]), 4) for k in range(c)},
        "macro_auc": round(float(np.nanmean(auc)), 4),
        "confusion": confusion(y, pred, c).tolist(),
    }


def evaluate(weights: Path, data: Path, threads: int = 1) -> dict[str, object]:
    """Load ``weights`` and compute :func:`scores` on ``<data>/<size>/test.npz``; JSON-ready dict."""
    torch.set_num_threads(threads)
    cfg, kind = read_meta(weights)
    model = load_model(weights)
    d = np.load(find_npz(data, cfg.image_size, "test", "dermae"))
    y = d["labels"]
    probs = predict(model, kind, d["images"])
    return {"engine": "dermae", "model": kind, "weights": str(weights), "weights_sha256": sha256(weights),
            "params": int(sum(p.numel() for p in model.parameters())), "config": cfg.to_dict(),
            "split": "held-out (test.npz)", "test_images": int(len(y)),
            "test_counts": {CLASSES[k]: int((y == k).sum()) for k in range(len(CLASSES))},
            **scores(y, probs)}


def format_table(res: dict[str, object]) -> str:
    """Plain-text table of :func:`evaluate`'s result."""
    counts = res["test_counts"]
    lines = [f"held-out split: {res['test_images']} images ({', '.join(f'{k} {v}' for k, v in counts.items())}); "  # type: ignore[union-attr]
             f"model: {res['model']} ({res['params']:,} parameters)",
             f"{'class':22s} {'n':>4s} {'F1':>7s} {'AUC':>7s}"]
    for k in CLASSES:
        lines.append(f"{k:22s} {counts[k]:4d} {res['f1'][k]:7.3f} {res['auc'][k]:7.3f}")  # type: ignore[index]
    lines.append(f"balanced accuracy {res['balanced_accuracy']:.3f} | macro F1 {res['macro_f1']:.3f} | "
                 f"minority F1 (MEL, SK) {res['minority_f1_mean']:.3f} | macro AUC {res['macro_auc']:.3f} | "
                 f"accuracy {res['accuracy']:.3f}")
    lines.append("confusion (rows true, cols predicted " + "/".join(SHORT) + "): " + str(res["confusion"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = evaluate_parser("dermae", "Evaluate DERMAE weights on the held-out split.").parse_args(argv)
    res = evaluate(args.weights, args.data, args.threads)
    name = "eval.json" if res["model"] == "student" else f"eval_{res['model']}.json"
    publish(res, "engines.dermae.evaluate", argv, format_table(res), args.out or args.weights.with_name(name))


if __name__ == "__main__":
    main()


def measure_latency(model: torch.nn.Module, size: int, repeats: int = 30, threads: int | None = None
                    ) -> dict[str, float]:
    """CPU forward latency of one ``[1, 3, size, size]`` image: median / p90 seconds after 3 warm-ups."""
    import time

    if threads is not None:
        torch.set_num_threads(threads)
    x = torch.randn(1, 3, size, size)
    ts = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            t = time.perf_counter()
            model(x)
            if i >= 3:
                ts.append(time.perf_counter() - t)
    return {"median_ms": round(float(np.median(ts)) * 1e3, 3), "p90_ms": round(float(np.percentile(ts, 90)) * 1e3, 3),
            "repeats": repeats, "threads": torch.get_num_threads()}
